// polytask models: the presets, and any of them as a config file to copy and edit.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/setup.h"
#include "models/config.h"

namespace polytask::cli {

int run_models(const std::vector<std::string>& argv) {
  Args a("models",
         "Lists the model presets that 'polytask train --preset NAME' accepts. With --show NAME, "
         "prints that preset as a TOML config file: save it, edit it, train it with --config.");
  a.option("show", "NAME", "", "print a preset's config file");
  if (!a.parse(argv)) {
    std::cout << a.usage();
    return 0;
  }
  if (a.is_set("show")) {
    std::cout << models::preset_toml(a.get("show"));
    return 0;
  }
  for (const auto& p : models::list_presets()) std::cout << p.name << "\n    " << p.description << "\n";
  return 0;
}

}  // namespace polytask::cli
