// metrics.jsonl read back for the training curves (watch/run_history.h), and the curves drawn
// from whatever it accepted (watch/curves_plot.h) into scratch files.
#include "tests/fuzz/fuzz_support.h"
#include "watch/curves_plot.h"
#include "watch/run_history.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string path = fuzz::write_scratch("history.jsonl", data, size);
  fuzz::expect_success_or_error([&] {
    const watch::RunHistory history = watch::read_run_history(path, "fuzz");
    // Drawing costs far more than parsing: only for histories of a sane size.
    if (history.epochs.size() <= 64 && history.tasks.size() <= 8)
      watch::plot_curves({history}, "fuzz", fuzz::scratch_dir() + "/curves.png",
                         fuzz::scratch_dir() + "/curves.svg");
  });
  return 0;
}
