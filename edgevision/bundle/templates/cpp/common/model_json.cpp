// model.json (schema edgevision.bundle/1) -> ModelInfo, with one-line errors for a bad file.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runner.hpp"

namespace edgevision {
namespace {

using nlohmann::json;

constexpr const char* kSchema = "edgevision.bundle/1";

// obj[key], which must exist and have the expected JSON type.
const json& field(const json& obj, const std::string& where, const char* key,
                  json::value_t type) {
  if (!obj.is_object() || !obj.contains(key)) {
    throw RunnerError("model.json: " + where + key + " is missing");
  }
  const json& value = obj.at(key);
  bool ok = value.type() == type ||
            (type == json::value_t::number_float && value.is_number()) ||
            (type == json::value_t::number_integer && value.is_number_integer());
  if (!ok) {
    throw RunnerError("model.json: " + where + key + " has the wrong type (" +
                      value.type_name() + ")");
  }
  return value;
}

// An optional positive integer (null: 0).
int optional_size(const json& obj, const std::string& where, const char* key) {
  if (!obj.contains(key) || obj.at(key).is_null()) return 0;
  int value = field(obj, where, key, json::value_t::number_integer).get<int>();
  if (value <= 0) throw RunnerError("model.json: " + where + key + " must be positive");
  return value;
}

std::vector<double> numbers(const json& obj, const std::string& where, const char* key,
                            size_t count) {
  const json& list = field(obj, where, key, json::value_t::array);
  std::vector<double> values;
  for (const json& item : list) {
    if (!item.is_number()) throw RunnerError("model.json: " + where + key + " holds a non-number");
    values.push_back(item.get<double>());
  }
  if (values.size() == 1) values.resize(count, values[0]);  // one value for every channel
  if (values.size() != count) {
    throw RunnerError("model.json: " + where + key + " has " + std::to_string(values.size()) +
                      " values, the model has " + std::to_string(count) + " channels");
  }
  return values;
}

// An optional string field that, when present, must be `expected` (what this runner does).
void expect_value(const json& section, const char* key, const std::string& expected) {
  if (!section.contains(key) || section.at(key).is_null()) return;
  const json& value = section.at(key);
  if (!value.is_string() || value.get<std::string>() != expected) {
    throw RunnerError("model.json: preprocess." + std::string(key) + " " + value.dump() +
                      " is not supported (\"" + expected + "\" is)");
  }
}

Preprocess read_preprocess(const json& section, int channels) {
  const std::string where = "preprocess.";
  Preprocess p;
  p.color = field(section, where, "color", json::value_t::string).get<std::string>();
  if (p.color != "RGB" && p.color != "L") {
    throw RunnerError("model.json: preprocess.color must be \"RGB\" or \"L\", not \"" + p.color +
                      "\"");
  }
  if ((p.color == "RGB") != (channels == 3) || (p.color == "L") != (channels == 1)) {
    throw RunnerError("model.json: preprocess.color " + p.color + " does not fit an input of " +
                      std::to_string(channels) + " channels");
  }
  std::string interpolation =
      section.value("interpolation", std::string("bilinear-pillow"));
  if (interpolation != "bilinear-pillow") {
    throw RunnerError("model.json: preprocess.interpolation " + interpolation +
                      " is not supported (bilinear-pillow is)");
  }
  if (p.color == "RGB") expect_value(section, "channel_order", "RGB");  // BGR: not supported
  expect_value(section, "layout", "CHW");
  p.resize_shorter = optional_size(section, where, "resize_shorter");
  p.center_crop = optional_size(section, where, "center_crop");
  p.scale = field(section, where, "scale", json::value_t::number_float).get<double>();
  p.mean = numbers(section, where, "mean", static_cast<size_t>(channels));
  p.std = numbers(section, where, "std", static_cast<size_t>(channels));
  for (double s : p.std) {
    if (s == 0.0) throw RunnerError("model.json: preprocess.std holds a zero");
  }
  return p;
}

std::vector<int64_t> read_shape(const json& input) {
  const json& shape = field(input, "input.", "shape", json::value_t::array);
  std::vector<int64_t> dims;
  for (const json& d : shape) {
    if (!d.is_number_integer()) throw RunnerError("model.json: input.shape holds a non-integer");
    dims.push_back(d.get<int64_t>());
  }
  bool ok = dims.size() == 4 && (dims[0] == -1 || dims[0] >= 1) && dims[1] >= 1 &&
            dims[2] >= 1 && dims[3] >= 1;
  if (!ok) {
    throw RunnerError("model.json: input.shape must be [N, C, H, W] with N -1 or positive (got " +
                      shape.dump() + ")");
  }
  return dims;
}

// input.batch.min (absent or null: 1): the smallest batch a dynamic-batch model takes.
int read_batch_min(const json& input) {
  if (!input.contains("batch") || input.at("batch").is_null()) return 1;
  const json& batch = field(input, "input.", "batch", json::value_t::object);
  if (!batch.contains("min") || batch.at("min").is_null()) return 1;
  int64_t min = field(batch, "input.batch.", "min", json::value_t::number_integer).get<int64_t>();
  const json max = batch.value("max", json());
  constexpr int64_t kLargest = 1 << 16;  // more copies of one image is a mistake
  if (min < 0 || min > kLargest || (max.is_number_integer() && max.get<int64_t>() < min)) {
    throw RunnerError("model.json: input.batch.min " + std::to_string(min) +
                      " is not a batch size from 0 to input.batch.max (and " +
                      std::to_string(kLargest) + ")");
  }
  return static_cast<int>(min);
}

json parse_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw RunnerError(path.string() + ": cannot read model.json (no such file?)");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw RunnerError(path.string() + ": not valid JSON (" + first_line(e.what()) + ")");
  }
}

}  // namespace

ModelInfo load_model_info(const std::filesystem::path& model_json) {
  json doc = parse_file(model_json);
  if (!doc.is_object()) throw RunnerError("model.json: not a JSON object");
  std::string schema = field(doc, "", "schema", json::value_t::string).get<std::string>();
  if (schema != kSchema) {
    throw RunnerError("model.json: schema " + schema + " is not " + kSchema);
  }
  ModelInfo info;
  info.dir = model_json.has_parent_path() ? model_json.parent_path() : ".";
  const json& model = field(doc, "", "model", json::value_t::object);
  info.model_file = info.dir / field(model, "model.", "file", json::value_t::string)
                                   .get<std::string>();
  const json engine = model.value("engine", json());
  info.engine_file = info.dir / (engine.is_string() ? engine.get<std::string>() : "model.engine");

  const json& input = field(doc, "", "input", json::value_t::object);
  info.input_name = field(input, "input.", "name", json::value_t::string).get<std::string>();
  info.input_dtype = field(input, "input.", "dtype", json::value_t::string).get<std::string>();
  if (info.input_dtype != "float32" && info.input_dtype != "float16") {
    throw RunnerError("model.json: input.dtype " + info.input_dtype +
                      " is not supported (float32, float16 are)");
  }
  std::string layout = input.value("layout", std::string("NCHW"));
  if (layout != "NCHW") throw RunnerError("model.json: input.layout " + layout + " is not NCHW");
  info.input_shape = read_shape(input);
  info.batch_min = read_batch_min(input);

  const json& output = field(doc, "", "output", json::value_t::object);
  info.output_name = output.value("name", std::string());
  info.classes = field(output, "output.", "classes", json::value_t::number_integer).get<int>();
  const json& labels = field(doc, "", "labels", json::value_t::array);
  for (const json& label : labels) {
    if (!label.is_string()) throw RunnerError("model.json: labels holds a non-string");
    info.labels.push_back(label.get<std::string>());
  }
  if (info.classes <= 0 || static_cast<int>(info.labels.size()) != info.classes) {
    throw RunnerError("model.json: " + std::to_string(info.labels.size()) + " labels for " +
                      std::to_string(info.classes) + " output classes");
  }
  info.preprocess = read_preprocess(field(doc, "", "preprocess", json::value_t::object),
                                    info.channels());
  return info;
}

}  // namespace edgevision
