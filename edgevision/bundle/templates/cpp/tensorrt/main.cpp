// edgevision bundle: the TensorRT runner. Deserializes the engine built on this device
// (model.json's model.engine, else model.engine from build_engine.sh), with TensorRT's
// plugins registered; runs one image at a time on a CUDA stream: pinned host buffers, device
// buffers, setInputShape + setTensorAddress + enqueueV3. Written against TensorRT 10.3 to 11.x
// (the API without bindings indices, present in all of them).
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <NvInfer.h>
#include <NvInferPlugin.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <type_traits>

#include "runner.hpp"

namespace {

using edgevision::ModelInfo;
using edgevision::Options;
using edgevision::RunnerError;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw RunnerError(std::string("CUDA: ") + what + " failed (" + cudaGetErrorString(status) +
                      ")");
  }
}

// TensorRT's messages: warnings and errors to stderr, the rest dropped.
class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "TensorRT: " << message << "\n";
  }
};

// cudaMallocHost / cudaMalloc buffers, freed with their owner; not copyable (one owner).
struct HostBuffer {
  void* data = nullptr;
  HostBuffer() = default;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { if (data) cudaFreeHost(data); }
};
struct DeviceBuffer {
  void* data = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { if (data) cudaFree(data); }
};
static_assert(!std::is_copy_constructible_v<HostBuffer> && !std::is_copy_assignable_v<HostBuffer>);
static_assert(!std::is_copy_constructible_v<DeviceBuffer> &&
              !std::is_copy_assignable_v<DeviceBuffer>);

size_t element_size(nvinfer1::DataType type, const std::string& tensor) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    default:
      throw RunnerError("tensor " + tensor + ": the runner handles float32/float16 tensors only");
  }
}

size_t volume(const nvinfer1::Dims& dims) {
  size_t count = 1;
  for (int i = 0; i < dims.nbDims; ++i) count *= static_cast<size_t>(dims.d[i]);
  return count;
}

std::vector<char> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw RunnerError(path.string() + ": engine not found (build it on this device with "
                      "./build_engine.sh)");
  }
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

class TensorRtSession : public edgevision::Session {
 public:
  TensorRtSession(const ModelInfo& info, const Options&) : info_(info) {
    std::vector<char> plan = read_file(info.engine_file);
    initLibNvInferPlugins(&logger_, "");
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw RunnerError("TensorRT: cannot create a runtime");
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_) {
      throw RunnerError(info.engine_file.string() + ": TensorRT cannot deserialize it (built by "
                        "another TensorRT version or for another GPU? rebuild it here)");
    }
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw RunnerError("TensorRT: cannot create an execution context");
    find_tensors();
    nvinfer1::Dims4 shape(info.batch(), info.channels(), info.height(), info.width());
    if (!context_->setInputShape(input_.c_str(), shape)) {
      throw RunnerError(info.engine_file.string() + ": the engine does not take input shape " +
                        describe(shape) + " (its optimization profile?)");
    }
    allocate();
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  ~TensorRtSession() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::vector<float> infer(const float* image_chw) override {
    fill_input(image_chw);
    check_cuda(cudaMemcpyAsync(input_device_.data, input_host_.data, input_bytes_,
                               cudaMemcpyHostToDevice, stream_), "copy to the device");
    if (!context_->enqueueV3(stream_)) throw RunnerError("TensorRT: enqueueV3 failed");
    check_cuda(cudaMemcpyAsync(output_host_.data, output_device_.data, output_bytes_,
                               cudaMemcpyDeviceToHost, stream_), "copy from the device");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return first_output_row();
  }

 private:
  static std::string describe(const nvinfer1::Dims& dims) {
    std::string text = "[";
    for (int i = 0; i < dims.nbDims; ++i) text += (i ? ", " : "") + std::to_string(dims.d[i]);
    return text + "]";
  }

  // The engine's one input (named as model.json says) and one output.
  void find_tensors() {
    for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
      std::string name = engine_->getIOTensorName(i);
      bool is_input = engine_->getTensorIOMode(name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
      std::string& slot = is_input ? input_ : output_;
      if (!slot.empty()) {
        throw RunnerError(info_.engine_file.string() + ": the runner takes engines with one "
                          "input and one output");
      }
      slot = name;
    }
    if (input_ != info_.input_name) {
      throw RunnerError(info_.engine_file.string() + ": its input is " + input_ +
                        ", model.json says " + info_.input_name);
    }
    if (output_.empty()) throw RunnerError(info_.engine_file.string() + ": no output tensor");
    input_type_ = engine_->getTensorDataType(input_.c_str());
    output_type_ = engine_->getTensorDataType(output_.c_str());
  }

  void allocate() {
    input_count_ = info_.image_floats() * info_.batch();
    input_bytes_ = input_count_ * element_size(input_type_, input_);
    output_count_ = volume(context_->getTensorShape(output_.c_str()));
    output_bytes_ = output_count_ * element_size(output_type_, output_);
    check_cuda(cudaMallocHost(&input_host_.data, input_bytes_), "cudaMallocHost");
    check_cuda(cudaMallocHost(&output_host_.data, output_bytes_), "cudaMallocHost");
    check_cuda(cudaMalloc(&input_device_.data, input_bytes_), "cudaMalloc");
    check_cuda(cudaMalloc(&output_device_.data, output_bytes_), "cudaMalloc");
    if (!context_->setTensorAddress(input_.c_str(), input_device_.data) ||
        !context_->setTensorAddress(output_.c_str(), output_device_.data)) {
      throw RunnerError("TensorRT: setTensorAddress failed");
    }
  }

  // The image in every batch slot, as the engine's input type.
  void fill_input(const float* image_chw) {
    const size_t size = info_.image_floats();
    for (size_t i = 0; i < input_count_; ++i) {
      float value = image_chw[i % size];
      if (input_type_ == nvinfer1::DataType::kHALF) {
        static_cast<__half*>(input_host_.data)[i] = __float2half_rn(value);
      } else {
        static_cast<float*>(input_host_.data)[i] = value;
      }
    }
  }

  std::vector<float> first_output_row() const {
    const size_t row = output_count_ / static_cast<size_t>(info_.batch());
    std::vector<float> scores(row);
    for (size_t i = 0; i < row; ++i) {
      scores[i] = output_type_ == nvinfer1::DataType::kHALF
                      ? __half2float(static_cast<const __half*>(output_host_.data)[i])
                      : static_cast<const float*>(output_host_.data)[i];
    }
    return scores;
  }

  ModelInfo info_;
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::string input_, output_;
  nvinfer1::DataType input_type_ = nvinfer1::DataType::kFLOAT;
  nvinfer1::DataType output_type_ = nvinfer1::DataType::kFLOAT;
  size_t input_count_ = 0, input_bytes_ = 0, output_count_ = 0, output_bytes_ = 0;
  HostBuffer input_host_, output_host_;
  DeviceBuffer input_device_, output_device_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  return edgevision::run_main(argc, argv, [](const ModelInfo& info, const Options& options) {
    return std::make_unique<TensorRtSession>(info, options);
  });
}
