// metrics.jsonl (cli/metrics_json.h): the lines a resumed run keeps. The first byte picks the
// resumed epoch, so epochs above and below it are both exercised.
#include "cli/metrics_json.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  if (size == 0) return 0;
  const int last_epoch = int(data[0] % 8);
  const std::string path = fuzz::write_scratch("metrics.jsonl", data + 1, size - 1);
  fuzz::expect_success_or_error([&] { (void)cli::join_lines(cli::read_metric_lines(path, last_epoch)); });
  return 0;
}
