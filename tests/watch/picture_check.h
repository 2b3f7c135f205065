// Helpers of the picture tests: where they write, and looking at the pixels they drew.
#pragma once

#include <cairo.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace polytask::watch::testing {

// A fresh directory for this test's files; with POLYTASK_WATCH_SAMPLES set, that directory
// instead, so that the pictures can be looked at after the run.
inline std::string out_dir() {
  if (const char* samples = std::getenv("POLYTASK_WATCH_SAMPLES")) {
    std::filesystem::create_directories(samples);
    return samples;
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("polytask_watch_" + std::string(info->test_suite_name()) + "_" + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

struct Rgb {
  int r = 0, g = 0, b = 0;
};

// The pixel at (x, y) of an RGB24 or ARGB32 image surface (alpha ignored: our pictures are
// opaque).
inline Rgb pixel(cairo_surface_t* s, int x, int y) {
  const unsigned char* row =
      cairo_image_surface_get_data(s) + y * cairo_image_surface_get_stride(s);
  uint32_t v = 0;
  std::memcpy(&v, row + 4 * x, 4);
  return {static_cast<int>((v >> 16) & 255), static_cast<int>((v >> 8) & 255),
          static_cast<int>(v & 255)};
}

inline bool near(Rgb a, Rgb b, int tolerance) {
  return std::abs(a.r - b.r) <= tolerance && std::abs(a.g - b.g) <= tolerance &&
         std::abs(a.b - b.b) <= tolerance;
}

// How many pixels of the surface are within `tolerance` of `colour` in each channel.
inline long count_near(cairo_surface_t* s, Rgb colour, int tolerance = 12) {
  cairo_surface_flush(s);
  long n = 0;
  for (int y = 0; y < cairo_image_surface_get_height(s); ++y)
    for (int x = 0; x < cairo_image_surface_get_width(s); ++x)
      n += near(pixel(s, x, y), colour, tolerance);
  return n;
}

}  // namespace polytask::watch::testing
