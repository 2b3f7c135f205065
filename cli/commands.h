// The polytask sub-commands. Each parses its own arguments (with --help) and returns the exit
// code; errors are thrown (UsageError for command-line mistakes) and reported by main.
#pragma once

#include <string>
#include <vector>

namespace polytask::cli {

int run_train(const std::vector<std::string>& argv);
int run_eval(const std::vector<std::string>& argv);
int run_predict(const std::vector<std::string>& argv);
int run_models(const std::vector<std::string>& argv);
int run_plot(const std::vector<std::string>& argv);

}  // namespace polytask::cli
