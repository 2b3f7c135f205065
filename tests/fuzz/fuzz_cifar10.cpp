// CIFAR-10 binary reader (datasets/cifar10.h): the bytes as one batch file.
#include "datasets/cifar10.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string path = fuzz::write_scratch("data_batch_1.bin", data, size);
  fuzz::expect_success_or_error([&] { datasets::read_cifar10_batches({path}); });
  return 0;
}
