// Model configs (models/config.h): TOML text through parse_config, then build_model for the
// inputs the config declares (undeclared shapes get a small image shape, as data would give),
// then the fan-out name and the TOML written back.
#include <map>
#include <string>

#include "models/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace polytask;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_success_or_error([&] {
    const models::ModelConfig config = models::parse_config(text, "fuzz.toml");
    std::map<std::string, Shape> shapes;
    for (size_t i = 0; i < config.input_names.size(); ++i)
      shapes[config.input_names[i]] =
          config.input_shapes[i].rank() ? config.input_shapes[i] : Shape{1, 8, 8};
    const Model model = models::build_model(config, shapes);
    (void)models::fan_out_value(config);
    (void)models::to_toml(config);
  });
  return 0;
}
