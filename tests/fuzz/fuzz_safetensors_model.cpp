// Parameters from safetensors (engine/checkpoint.h, load_parameters): the bytes as a
// model.safetensors loaded into the fixed network (fuzz_checkpoint.h).
#include "tests/fuzz/fuzz_checkpoint.h"

namespace {
polytask::fuzz::FixedRun& run() {
  static polytask::fuzz::FixedRun r;
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace polytask;
  fuzz::write_seeds_if_asked(
      "model", fuzz::read_whole(fuzz::valid_checkpoint_dir() + "/" + kCheckpointModelFile));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string path = fuzz::write_scratch(kCheckpointModelFile, data, size);
  fuzz::expect_success_or_error([&] { load_parameters(path, *run().net); });
  return 0;
}
