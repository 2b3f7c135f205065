// IDX reader (datasets/idx.h): the bytes as an image file and as a label file, raw or gzip
// (read_file_bytes decompresses when they start with 1f 8b), through the real path-based API.
#include "datasets/idx.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string path = fuzz::write_scratch("data-idx-ubyte", data, size);
  fuzz::expect_success_or_error([&] { datasets::read_idx_images(path); });
  fuzz::expect_success_or_error([&] { datasets::read_idx_labels(path, 2); });
  return 0;
}
