// TensorBoard events files (watch/event_file.h): what a resumed run reads back and rewrites.
// The bytes are one events file in a scratch directory; read_events decodes it, prune_events
// rewrites it keeping the records whose step is even (its rewrite must read back the same).
#include <filesystem>

#include "tests/fuzz/fuzz_support.h"
#include "watch/event_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string dir = fuzz::scratch_dir() + "/events";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/events.out.tfevents.0.fuzz";
  fuzz::write_scratch("events/events.out.tfevents.0.fuzz", data, size);
  fuzz::expect_success_or_error([&] {
    (void)watch::read_events(path);
    watch::prune_events(dir, [](const watch::EventRecord& r) { return r.step % 2 == 0; });
    bool truncated = true;
    const auto kept = watch::read_events(path, &truncated);
    if (truncated) fail("a pruned events file reads back truncated");
    for (const auto& r : kept)
      if (r.file_version.empty() && r.step % 2 != 0) fail("prune kept an odd step");
  });
  return 0;
}
