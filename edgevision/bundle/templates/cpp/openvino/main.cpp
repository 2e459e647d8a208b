// edgevision bundle: the OpenVINO runner. The model (model.json's model.file, an ONNX graph)
// runs on the CPU plugin as edgevision's `openvino` backend runs it: static input shape,
// f32 inference precision (not the plugin's bf16 default), the LATENCY performance hint.
#include <openvino/openvino.hpp>

#include "runner.hpp"

namespace {

using edgevision::ModelInfo;
using edgevision::Options;
using edgevision::RunnerError;

class OpenVinoSession : public edgevision::Session {
 public:
  OpenVinoSession(const ModelInfo& info, const Options& options) : info_(info) {
    if (!std::filesystem::exists(info.model_file)) {
      throw RunnerError(info.model_file.string() + ": model file not found");
    }
    std::shared_ptr<ov::Model> model = read(info.model_file);
    if (model->inputs().size() != 1) {
      throw RunnerError(info.model_file.string() + ": the runner takes models with one input");
    }
    if (!model->input().get_names().count(info.input_name)) {
      throw RunnerError(info.model_file.string() + ": no input named " + info.input_name +
                        " (model.json's input.name)");
    }
    model->reshape(ov::PartialShape{info.batch(), info.channels(), info.height(), info.width()});
    ov::preprocess::PrePostProcessor io(model);  // f32 in and out, whatever the graph's types
    io.input().tensor().set_element_type(ov::element::f32);
    io.output(0).tensor().set_element_type(ov::element::f32);
    model = io.build();
    ov::AnyMap config{ov::hint::inference_precision(ov::element::f32),
                      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
    request_ = core_.compile_model(model, "CPU", config).create_infer_request();
  }

  std::vector<float> infer(const float* image_chw) override {
    ov::Tensor input = request_.get_input_tensor();
    float* data = input.data<float>();
    const size_t size = info_.image_floats();
    for (int b = 0; b < info_.batch(); ++b) std::copy(image_chw, image_chw + size, data + b * size);
    request_.infer();
    ov::Tensor output = request_.get_output_tensor(0);
    const float* scores = output.data<const float>();
    const size_t row = output.get_size() / static_cast<size_t>(info_.batch());
    return std::vector<float>(scores, scores + row);
  }

 private:
  std::shared_ptr<ov::Model> read(const std::filesystem::path& path) {
    try {
      return core_.read_model(path.string());
    } catch (const ov::Exception& e) {
      throw RunnerError(path.string() + ": OpenVINO cannot read it (" +
                        edgevision::first_line(e.what()) + ")");
    }
  }

  ModelInfo info_;
  ov::Core core_;
  ov::InferRequest request_;
};

}  // namespace

int main(int argc, char** argv) {
  return edgevision::run_main(argc, argv, [](const ModelInfo& info, const Options& options) {
    return std::make_unique<OpenVinoSession>(info, options);
  });
}
