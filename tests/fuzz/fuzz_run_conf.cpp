// run.conf (cli/setup.h): parse_settings, then every setting train --resume, eval and predict
// read, as they read them (run_options, the optimiser's numbers, the validation split).
#include "cli/setup.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_success_or_error([&] {
    const cli::Settings s = cli::parse_settings(text, "run.conf");
    (void)cli::format_settings(s);
    datasets::LoadOptions load;
    NetworkOptions options;
    cli::run_options(s, load, options);
    (void)cli::setting(s, "data");
    (void)cli::setting(s, "optimizer");
    (void)cli::setting_number(s, "lr");
    (void)cli::setting_number(s, "momentum");
    (void)cli::setting_number(s, "val-split");
  });
  return 0;
}
