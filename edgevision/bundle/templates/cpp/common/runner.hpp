// edgevision bundle C++ runner: what every target's main.cpp shares.
//
// A target (OpenVINO, TensorRT) implements `Session` and calls `run_main` with a factory;
// everything else -- model.json, image decoding, preprocessing exactly as
// edgevision.data.preprocess.Preprocess does it, top-5, latency, errors -- lives here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgevision {

// A bad input the user can fix (image, model.json, model file): one line on stderr, exit 2.
class RunnerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The most pixels an image may have, decoded or resized: twice Pillow's Image.MAX_IMAGE_PIXELS
// (89,478,485), above which Pillow raises DecompressionBombError. Images are refused from their
// header, before decoding; a resize to more is refused before allocating.
constexpr uint64_t kMaxImagePixels = 2 * 89478485ull;

// model.json's "preprocess" section (schema edgevision.bundle/1).
struct Preprocess {
  std::string color = "RGB";  // "RGB" (grey images replicated) or "L" (Pillow's convert("L"))
  int resize_shorter = 0;      // 0: none
  int center_crop = 0;         // 0: none
  double scale = 1.0 / 255.0;
  std::vector<double> mean;
  std::vector<double> std;
};

// What the runner needs from model.json.
struct ModelInfo {
  std::filesystem::path dir;          // model.json's folder: the model files are there
  std::filesystem::path model_file;   // model.file (the ONNX graph)
  std::filesystem::path engine_file;  // model.engine, or "model.engine" when null (TensorRT)
  std::string input_name;
  std::string input_dtype;
  std::vector<int64_t> input_shape;   // NCHW; -1 for a dynamic batch
  int batch_min = 1;                  // input.batch.min (the engine profile's smallest batch)
  std::string output_name;
  int classes = 0;
  Preprocess preprocess;
  std::vector<std::string> labels;

  int channels() const { return static_cast<int>(input_shape[1]); }
  int height() const { return static_cast<int>(input_shape[2]); }
  int width() const { return static_cast<int>(input_shape[3]); }
  // The batch the runner feeds (copies of one image): the model's fixed batch, else the
  // smallest it takes, max(1, input.batch.min).
  int batch() const {
    return input_shape[0] > 0 ? static_cast<int>(input_shape[0]) : std::max(1, batch_min);
  }
  size_t image_floats() const { return static_cast<size_t>(channels()) * height() * width(); }
};

// An 8-bit image, interleaved: 3 channels (RGB) or 1 (L).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

struct Options {
  std::filesystem::path model_json;
  std::vector<std::string> images;
  int runs = 20;  // 0: no timing
  int warmup = 3;
  int threads = 0;  // 0: the runtime's default
  bool json = false;
  std::string dump_input;  // write the preprocessed inputs (float32 NCHW) here and exit
};

// One model loaded by a runtime; `infer` runs one image (CHW float32, model.json's shape) at
// batch `ModelInfo::batch()` (the image repeated) and returns its output row (classes floats).
class Session {
 public:
  virtual ~Session() = default;
  virtual std::vector<float> infer(const float* image_chw) = 0;
};

using SessionFactory =
    std::function<std::unique_ptr<Session>(const ModelInfo&, const Options&)>;

// model.json -> ModelInfo; RunnerError on a missing or malformed file.
ModelInfo load_model_info(const std::filesystem::path& model_json);

// Decode a file to 8-bit RGB (grey replicated, alpha dropped), as Pillow's convert("RGB").
Image decode_rgb(const std::string& path);
// Pillow's convert("L") of an RGB image (ITU-R 601-2 luma, 16-bit fixed point).
Image rgb_to_luma(const Image& rgb);
// Pillow's Image.resize(size, Image.Resampling.BILINEAR) (libImaging/Resample.c).
Image resize_bilinear(const Image& image, int width, int height);
// Steps 1-3 of the contract's algorithm: colour mode, resize, center crop.
Image preprocess_geometry(const Image& rgb, const Preprocess& preprocess);
// Steps 4-5: uint8 -> normalised CHW float32; RunnerError when the size is not the model's.
std::vector<float> preprocess_tensor(const Image& image, const ModelInfo& info);
// Decode + preprocess one file.
std::vector<float> load_input(const std::string& path, const ModelInfo& info);

// The whole program: parse argv, load, run, print; returns the exit status (2 on a bad input).
int run_main(int argc, char** argv, const SessionFactory& factory);

// The first line of a (possibly multi-line) message.
std::string first_line(const std::string& message);

}  // namespace edgevision
