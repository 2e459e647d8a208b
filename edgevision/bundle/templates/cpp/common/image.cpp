// Image decoding and colour modes, matching what Pillow gives edgevision.
//
// Two formats, each refused where Pillow refuses it:
// - JPEG goes through libjpeg (libjpeg-turbo, the library Pillow itself decodes JPEG with, so
//   the pixels are Pillow's); a truncated file is refused, as Pillow refuses it.
// - PNG goes through stb_image (built for PNG only), whose decoder gives Pillow's pixels but
//   checks neither chunk checksums nor much else: the file's chunks are walked first, every
//   CRC-32 verified (zlib's crc32) and the file must end with IEND, so a corrupt or truncated
//   PNG is refused rather than decoded to garbage.
// Every other format (BMP, GIF, TIFF, PPM, WebP, ...) is refused with a one-line error, and so
// is an image of more than kMaxImagePixels pixels, from its header, before any allocation.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include <jpeglib.h>
#include <jerror.h>
#include <zlib.h>

#define STBI_ONLY_PNG
#define STBI_NO_STDIO
// A side may be as long as kMaxImagePixels allows (stb_image alone: 2^24).
#define STBI_MAX_DIMENSIONS 178956970
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "runner.hpp"

namespace edgevision {
namespace {

static_assert(kMaxImagePixels == STBI_MAX_DIMENSIONS, "stb_image's limit per side");

constexpr const char* kFormats = "not PNG or JPEG, the formats the runner reads";

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunnerError(path + ": no such image file (or it cannot be read)");
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

bool starts_with(const std::vector<unsigned char>& data, const char* magic, size_t size) {
  return data.size() >= size && std::memcmp(data.data(), magic, size) == 0;
}

bool is_jpeg(const std::vector<unsigned char>& data) {
  return starts_with(data, "\xFF\xD8\xFF", 3);
}

bool is_png(const std::vector<unsigned char>& data) {
  return starts_with(data, "\x89PNG\r\n\x1A\n", 8);
}

// Pillow's DecompressionBombError, from the size in the file's header.
void check_pixels(uint64_t width, uint64_t height, const std::string& path) {
  if (width * height > kMaxImagePixels) {
    throw RunnerError(path + ": the image is " + std::to_string(width) + "x" +
                      std::to_string(height) + ", more than " + std::to_string(kMaxImagePixels) +
                      " pixels (Pillow's decompression-bomb limit)");
  }
}

// ---- JPEG (libjpeg) ----

// libjpeg reports errors by calling error_exit, which must not return: it longjmps back to
// `guarded`. Everything libjpeg and the steps touch lives in this struct, on the heap, reached
// through a pointer: no local of the function calling setjmp changes between setjmp and
// longjmp, and no frame the longjmp skips has anything to destroy.
struct JpegDecoder {
  jpeg_decompress_struct cinfo;  // zero until jpeg_create_decompress (destroy is then a no-op)
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  FILE* file;

  ~JpegDecoder() {
    jpeg_destroy_decompress(&cinfo);
    if (file) std::fclose(file);
  }
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* decoder = static_cast<JpegDecoder*>(cinfo->client_data);
  (*cinfo->err->format_message)(cinfo, decoder->message);
  std::longjmp(decoder->jump, 1);
}

// Warnings (corrupt but decodable data) pass silently, as in Pillow, except premature end of
// data: Pillow refuses a truncated file ("image file is truncated"), libjpeg would pad it.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_jpeg_error(cinfo);
}

// Runs step(decoder) with libjpeg's errors caught: false (decoder->message says why) when
// libjpeg failed. `step` must hold nothing with a destructor (it may be longjmp'ed over).
template <typename Step>
bool guarded(JpegDecoder* decoder, const Step& step) {
  if (setjmp(decoder->jump)) return false;
  step(decoder);
  return true;
}

// libjpeg's default decoding (ISLOW IDCT, fancy upsampling), output RGB: Pillow's settings.
Image decode_jpeg(const std::string& path) {
  auto decoder = std::make_unique<JpegDecoder>();  // value-initialised: all zero
  JpegDecoder* d = decoder.get();
  d->file = std::fopen(path.c_str(), "rb");
  if (!d->file) throw RunnerError(path + ": cannot open the image");
  d->cinfo.err = jpeg_std_error(&d->manager);
  d->cinfo.client_data = d;  // kept by jpeg_create_decompress
  d->manager.error_exit = on_jpeg_error;
  d->manager.emit_message = on_jpeg_message;
  auto fail = [&]() {
    return RunnerError(path + ": cannot decode the JPEG image (" + d->message + ")");
  };
  bool ok = guarded(d, [](JpegDecoder* j) {
    jpeg_create_decompress(&j->cinfo);
    jpeg_stdio_src(&j->cinfo, j->file);
    jpeg_read_header(&j->cinfo, TRUE);
  });
  if (!ok) throw fail();
  if (d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK) {
    throw RunnerError(path + ": CMYK JPEG images are not supported (convert it to RGB)");
  }
  check_pixels(d->cinfo.image_width, d->cinfo.image_height, path);
  d->cinfo.out_color_space = JCS_RGB;
  if (!guarded(d, [](JpegDecoder* j) { jpeg_start_decompress(&j->cinfo); })) throw fail();
  Image image{static_cast<int>(d->cinfo.output_width), static_cast<int>(d->cinfo.output_height),
              3, {}};
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  const size_t row_bytes = static_cast<size_t>(image.width) * 3;
  uint8_t* pixels = image.pixels.data();
  ok = guarded(d, [pixels, row_bytes](JpegDecoder* j) {
    while (j->cinfo.output_scanline < j->cinfo.output_height) {
      JSAMPROW row = pixels + j->cinfo.output_scanline * row_bytes;
      jpeg_read_scanlines(&j->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&j->cinfo);
  });
  if (!ok) throw fail();
  return image;
}

// ---- PNG (chunks checked here, pixels by stb_image) ----

uint32_t big_endian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Walks the chunks after the signature: IHDR first (its size checked at once, before anything
// else is read), every chunk's CRC-32 right, IEND reached before the file ends.
void check_png_chunks(const std::vector<unsigned char>& data, const std::string& path) {
  const std::string truncated = path + ": cannot decode the PNG image (the file is truncated)";
  size_t pos = 8;
  for (bool first = true;; first = false) {
    if (data.size() - pos < 12) throw RunnerError(truncated);
    const uint32_t length = big_endian32(&data[pos]);
    if (length > data.size() - pos - 12) throw RunnerError(truncated);
    const unsigned char* type = &data[pos + 4];
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (first && (name != "IHDR" || length != 13)) {
      throw RunnerError(path + ": cannot decode the PNG image (it does not start with IHDR)");
    }
    uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + length);
    if (crc != big_endian32(type + 4 + length)) {
      throw RunnerError(path + ": cannot decode the PNG image (bad CRC-32 in its " + name +
                        " chunk: the file is corrupt)");
    }
    if (first) {
      check_pixels(big_endian32(type + 4), big_endian32(type + 8), path);
      if (type[12] == 16) {
        throw RunnerError(path + ": 16-bit PNG images are not supported (Pillow reads them "
                          "differently)");
      }
    }
    pos += 12 + static_cast<size_t>(length);
    if (name == "IEND") return;
  }
}

// stb_image, converted as Pillow's convert("RGB"): grey replicated, alpha dropped.
Image decode_png(const std::vector<unsigned char>& data, const std::string& path) {
  check_png_chunks(data, path);
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data.data(), static_cast<int>(data.size()), &width, &height,
                            &channels, 3),
      &stbi_image_free);
  if (!pixels) {
    throw RunnerError(path + ": cannot decode the PNG image (" + stbi_failure_reason() + ")");
  }
  Image image{width, height, 3, {}};
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

}  // namespace

Image decode_rgb(const std::string& path) {
  std::vector<unsigned char> data = read_bytes(path);
  if (is_jpeg(data)) return decode_jpeg(path);
  if (is_png(data)) {
    if (data.size() > static_cast<size_t>(INT32_MAX)) {
      throw RunnerError(path + ": the PNG file is larger than 2 GiB");
    }
    return decode_png(data, path);
  }
  throw RunnerError(path + ": cannot decode the image (" + kFormats + ")");
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
