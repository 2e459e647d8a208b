// Image decoding and colour modes, matching what Pillow gives edgevision.
//
// JPEG goes through libjpeg (libjpeg-turbo, the library Pillow itself decodes JPEG with):
// stb_image's own JPEG decoder upsamples chroma and converts YCbCr differently and differs
// from Pillow by up to a few levels per pixel. Other formats (PNG, BMP, TGA, GIF, PNM, PSD,
// HDR excluded) go through stb_image, whose lossless decoders give Pillow's pixels.
// Without libjpeg at build time (EDGEVISION_HAVE_LIBJPEG undefined) stb_image decodes JPEG
// too, and CMake says so.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#ifdef EDGEVISION_HAVE_LIBJPEG
#include <csetjmp>
#include <jpeglib.h>
#include <jerror.h>
#endif

#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "runner.hpp"

namespace edgevision {
namespace {

bool is_jpeg(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[3] = {0, 0, 0};
  in.read(reinterpret_cast<char*>(magic), 3);
  return in.gcount() == 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF;
}

#ifdef EDGEVISION_HAVE_LIBJPEG
struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// Warnings (corrupt but decodable data) pass silently, as in Pillow, except a truncated file,
// which Pillow refuses ("image file is truncated") and libjpeg would pad with grey.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_jpeg_error(cinfo);
}

// libjpeg's default decoding (ISLOW IDCT, fancy upsampling), output RGB: Pillow's settings.
Image decode_jpeg(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw RunnerError(path + ": cannot open the image");
  jpeg_decompress_struct cinfo;
  JpegError error;
  cinfo.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = on_jpeg_error;
  error.manager.emit_message = on_jpeg_message;
  Image image;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw RunnerError(path + ": cannot decode the JPEG image (" + error.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file.get());
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    throw RunnerError(path + ": CMYK JPEG images are not supported (convert it to RGB)");
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  image.channels = 3;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image.pixels.data() + static_cast<size_t>(cinfo.output_scanline) *
                                             image.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return image;
}
#endif

// stb_image, converted as Pillow's convert("RGB"): grey replicated, alpha dropped.
Image decode_stb(const std::string& path) {
  if (stbi_is_16_bit(path.c_str())) {
    throw RunnerError(path + ": 16-bit images are not supported (Pillow reads them differently)");
  }
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load(path.c_str(), &width, &height, &channels, 3), &stbi_image_free);
  if (!data) {
    throw RunnerError(path + ": cannot decode the image (" + stbi_failure_reason() + ")");
  }
  Image image{width, height, 3, {}};
  image.pixels.assign(data.get(), data.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

}  // namespace

Image decode_rgb(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw RunnerError(path + ": no such image file (or it cannot be read)");
#ifdef EDGEVISION_HAVE_LIBJPEG
  if (is_jpeg(path)) return decode_jpeg(path);
#else
  (void)is_jpeg;
#endif
  return decode_stb(path);
}

// Pillow's libImaging/Convert.c rgb2l (license: LICENSE.pillow): L24(rgb) >> 16 with
// L24(rgb) = rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000 (ITU-R 601-2 luma).
Image rgb_to_luma(const Image& rgb) {
  Image grey{rgb.width, rgb.height, 1, {}};
  grey.pixels.resize(static_cast<size_t>(rgb.width) * rgb.height);
  for (size_t i = 0; i < grey.pixels.size(); ++i) {
    const uint8_t* p = &rgb.pixels[i * 3];
    uint32_t l24 = p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u;
    grey.pixels[i] = static_cast<uint8_t>(l24 >> 16);
  }
  return grey;
}

}  // namespace edgevision
