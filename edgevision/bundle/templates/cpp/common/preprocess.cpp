// The contract's preprocessing (edgevision.data.preprocess.Preprocess), step by step.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "runner.hpp"

namespace edgevision {
namespace {

// Preprocess._resize_shorter: the shorter side to `size`, sizes rounded as Python's round()
// (half to even: std::nearbyint in the default rounding mode), computed in double and refused
// above kMaxImagePixels before they become ints (a 1x10^7 image resized to 224 would be
// 224x2.24e9).
Image resize_shorter(const Image& image, int size) {
  double scale = static_cast<double>(size) / std::min(image.width, image.height);
  double width = std::max<double>(size, std::nearbyint(image.width * scale));
  double height = std::max<double>(size, std::nearbyint(image.height * scale));
  if (width * height > static_cast<double>(kMaxImagePixels)) {
    char size_text[64];
    std::snprintf(size_text, sizeof size_text, "%.0fx%.0f", width, height);
    throw RunnerError("resizing the " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + " image gives " + size_text +
                      ", more than " + std::to_string(kMaxImagePixels) + " pixels");
  }
  // an unchanged size gives the image itself
  return resize_bilinear(image, static_cast<int>(width), static_cast<int>(height));
}

// Preprocess._center_crop.
Image center_crop(const Image& image, int size) {
  Image resized = (image.width < size || image.height < size) ? resize_shorter(image, size)
                                                              : image;
  int left = (resized.width - size) / 2;
  int top = (resized.height - size) / 2;
  Image out{size, size, resized.channels, {}};
  out.pixels.resize(static_cast<size_t>(size) * size * resized.channels);
  const size_t row_bytes = static_cast<size_t>(size) * resized.channels;
  for (int y = 0; y < size; ++y) {
    const uint8_t* src = &resized.pixels[(static_cast<size_t>(top + y) * resized.width + left) *
                                         resized.channels];
    std::copy(src, src + row_bytes, &out.pixels[static_cast<size_t>(y) * row_bytes]);
  }
  return out;
}

}  // namespace

Image preprocess_geometry(const Image& rgb, const Preprocess& p) {
  Image image = p.color == "L" ? rgb_to_luma(rgb) : rgb;
  if (p.resize_shorter > 0) image = resize_shorter(image, p.resize_shorter);
  if (p.center_crop > 0) {
    if (p.resize_shorter == 0 && (image.width != p.center_crop || image.height != p.center_crop)) {
      image = resize_shorter(image, p.center_crop);
    }
    image = center_crop(image, p.center_crop);
  }
  return image;
}

// Preprocess.normalise: float32(value / 255) -- computed as value * scale in double and rounded
// once to float32, which equals NumPy's float32 division for every uint8 value when scale is
// 1/255 -- then (x - float32(mean)) / float32(std) in float32, channels first.
std::vector<float> preprocess_tensor(const Image& image, const ModelInfo& info) {
  if (image.width != info.width() || image.height != info.height()) {
    throw RunnerError("image is " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + " after preprocessing; the model takes " +
                      std::to_string(info.width()) + "x" + std::to_string(info.height()));
  }
  const Preprocess& p = info.preprocess;
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  std::vector<float> chw(plane * image.channels);
  for (int ch = 0; ch < image.channels; ++ch) {
    const float mean = static_cast<float>(p.mean[ch]);
    const float std = static_cast<float>(p.std[ch]);
    for (size_t i = 0; i < plane; ++i) {
      float value = static_cast<float>(image.pixels[i * image.channels + ch] * p.scale);
      chw[ch * plane + i] = (value - mean) / std;
    }
  }
  return chw;
}

std::vector<float> load_input(const std::string& path, const ModelInfo& info) {
  try {
    return preprocess_tensor(preprocess_geometry(decode_rgb(path), info.preprocess), info);
  } catch (const RunnerError& e) {
    std::string message = e.what();
    if (message.rfind(path, 0) == 0) throw;
    throw RunnerError(path + ": " + message);
  }
}

}  // namespace edgevision
