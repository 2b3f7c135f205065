// A small command-line parser: --name value / --name=value options and boolean flags, each
// declared with its help text, so `--help` is generated from the same declarations.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace polytask::cli {

// A command-line mistake: reported with exit code 2 (runtime errors get 1).
struct UsageError : Error {
  using Error::Error;
};

// The value of `text` when all of it is one integer / number, else nothing.
std::optional<int64_t> to_int(const std::string& text);
std::optional<double> to_number(const std::string& text);

class Args {
 public:
  Args(std::string command, std::string summary);

  void option(const std::string& name, const std::string& value_name, const std::string& fallback,
              const std::string& help);
  // May be given several times (e.g. --loss-weight digit=1 --loss-weight parity=0.5).
  void repeated(const std::string& name, const std::string& value_name, const std::string& help);
  void flag(const std::string& name, const std::string& help);

  // Throws UsageError on an unknown option or a missing value. Returns false when --help
  // was asked for (the usage is then in usage()).
  bool parse(const std::vector<std::string>& argv);

  std::string usage() const;
  const std::string& get(const std::string& name) const;
  const std::vector<std::string>& all(const std::string& name) const;
  bool is_set(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  // get_int, refused as a UsageError naming the option and value outside [lowest, highest].
  int64_t get_int_in(const std::string& name, int64_t lowest, int64_t highest) const;
  double get_double(const std::string& name) const;

 private:
  struct Spec {
    std::string value_name, fallback, help;
    bool is_flag = false, is_repeated = false;
  };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace polytask::cli
