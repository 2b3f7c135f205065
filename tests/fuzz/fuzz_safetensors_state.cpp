// Training state from safetensors (engine/checkpoint.h): the bytes as the
// training_state.safetensors beside a valid model.safetensors of the fixed network
// (fuzz_checkpoint.h), read alone (read_training_state) and restored (load_training_state).
#include "tests/fuzz/fuzz_checkpoint.h"

namespace {
polytask::fuzz::FixedRun& run() {
  static polytask::fuzz::FixedRun r;
  return r;
}
// A run directory in the layout from before checkpoints/ (the two files at the top), so each
// input is one file write.
std::string state_dir() { return polytask::fuzz::scratch_dir() + "/state"; }
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace polytask;
  const std::string valid = fuzz::valid_checkpoint_dir();
  fuzz::write_seeds_if_asked("state", fuzz::read_whole(valid + "/" + kCheckpointStateFile));
  std::filesystem::create_directories(state_dir());
  std::filesystem::copy_file(valid + "/" + kCheckpointModelFile,
                             state_dir() + "/" + kCheckpointModelFile);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  fuzz::write_scratch(std::string("state/") + kCheckpointStateFile, data, size);
  fuzz::expect_success_or_error([&] { (void)read_training_state(state_dir()); });
  fuzz::expect_success_or_error(
      [&] { (void)load_training_state(state_dir(), *run().net, run().adam); });
  return 0;
}
