# The shared part of every edgevision runner: include()d by the target's CMakeLists.txt, it
# defines the static library `edgevision_common` (model.json, decoding, preprocessing, output).
#
# Dependencies (Debian/Ubuntu packages):
#   nlohmann-json3-dev  JSON           (find_package(nlohmann_json 3))
#   libstb-dev          stb_image.h    (PNG decoding; <stb/stb_image.h>)
#   libjpeg-dev         libjpeg-turbo  (JPEG decoding identical to Pillow's)
#   zlib1g-dev          zlib           (crc32: PNG chunk checksums)
# Images are PNG or JPEG; other formats are refused.
set(EDGEVISION_COMMON_DIR "${CMAKE_CURRENT_LIST_DIR}")

# every runner: a release build (unless one is asked for) in standard C++17
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release)
endif()
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)

find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "nlohmann-json 3 not found: apt-get install nlohmann-json3-dev "
                      "(or set nlohmann_json_DIR)")
endif()

find_path(STB_INCLUDE_DIR stb/stb_image.h)
if(NOT STB_INCLUDE_DIR)
  message(FATAL_ERROR "stb_image.h not found (<stb/stb_image.h>): apt-get install libstb-dev "
                      "(or set STB_INCLUDE_DIR to the folder holding stb/stb_image.h)")
endif()

find_package(JPEG)
if(NOT JPEG_FOUND)
  message(FATAL_ERROR "libjpeg not found: apt-get install libjpeg-dev (JPEG images are decoded "
                      "by libjpeg-turbo, as Pillow decodes them)")
endif()

find_package(ZLIB)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "zlib not found: apt-get install zlib1g-dev (PNG chunk checksums)")
endif()

add_library(edgevision_common STATIC
  "${EDGEVISION_COMMON_DIR}/model_json.cpp"
  "${EDGEVISION_COMMON_DIR}/image.cpp"
  "${EDGEVISION_COMMON_DIR}/resample.cpp"
  "${EDGEVISION_COMMON_DIR}/preprocess.cpp"
  "${EDGEVISION_COMMON_DIR}/runner.cpp")
target_compile_features(edgevision_common PUBLIC cxx_std_17)
target_include_directories(edgevision_common PUBLIC "${EDGEVISION_COMMON_DIR}")
target_include_directories(edgevision_common SYSTEM PRIVATE "${STB_INCLUDE_DIR}")
target_link_libraries(edgevision_common PRIVATE nlohmann_json::nlohmann_json JPEG::JPEG
                      ZLIB::ZLIB)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  # No fused multiply-add contraction (the default on ARM64): the resize coefficients are
  # computed in double exactly as Pillow's C code computes them.
  target_compile_options(edgevision_common PRIVATE -ffp-contract=off -Wall -Wextra)
endif()
