#include "cli/args.h"

#include <sstream>


namespace polytask::cli {

namespace {
template <class... Parts>
[[noreturn]] void usage_error(Parts&&... parts) {
  throw UsageError(cat(std::forward<Parts>(parts)...));
}
}  // namespace

Args::Args(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void Args::option(const std::string& name, const std::string& value_name,
                  const std::string& fallback, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{value_name, fallback, help, false, false};
}

void Args::repeated(const std::string& name, const std::string& value_name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{value_name, "", help, false, true};
}

void Args::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{"", "", help, true, false};
}

bool Args::parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--help" || arg == "-h") return false;
    if (arg.rfind("--", 0) != 0) usage_error("unexpected argument '", arg, "' (see --help)");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) value = name.substr(eq + 1), name = name.substr(0, eq);
    const auto spec = specs_.find(name);
    if (spec == specs_.end()) usage_error("unknown option --", name, " (see --help)");
    if (spec->second.is_flag) {
      if (inline_value) usage_error("--", name, " takes no value");
      values_[name] = {"1"};
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) usage_error("--", name, " needs a value (", spec->second.value_name, ")");
      value = argv[++i];
    }
    if (spec->second.is_repeated) values_[name].push_back(value);
    else values_[name] = {value};
  }
  return true;
}

std::string Args::usage() const {
  std::ostringstream out;
  out << "usage: polytask " << command_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_flag ? "" : " " + s.value_name);
    left.resize(std::max<size_t>(left.size() + 2, 30), ' ');
    out << left << s.help;
    if (!s.fallback.empty()) out << " (default: " << s.fallback << ")";
    if (s.is_repeated) out << " (repeatable)";
    out << "\n";
  }
  out << "  --help                      show this help\n";
  return out.str();
}

const std::string& Args::get(const std::string& name) const {
  const auto v = values_.find(name);
  return v != values_.end() ? v->second.back() : specs_.at(name).fallback;
}

const std::vector<std::string>& Args::all(const std::string& name) const {
  static const std::vector<std::string> none;
  const auto v = values_.find(name);
  return v != values_.end() ? v->second : none;
}

bool Args::is_set(const std::string& name) const { return values_.count(name) > 0; }

std::optional<int64_t> to_int(const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  if (used != text.size()) return std::nullopt;
  return v;
}

std::optional<double> to_number(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  if (used != text.size()) return std::nullopt;
  return v;
}

int64_t Args::get_int(const std::string& name) const {
  const auto v = to_int(get(name));
  if (!v) usage_error("--", name, ": expected an integer, got '", get(name), "'");
  return *v;
}

int64_t Args::get_int_in(const std::string& name, int64_t lowest, int64_t highest) const {
  const int64_t v = get_int(name);
  if (v < lowest || v > highest)
    usage_error("--", name, " must be between ", lowest, " and ", highest, ", got ", get(name));
  return v;
}

double Args::get_double(const std::string& name) const {
  const auto v = to_number(get(name));
  if (!v) usage_error("--", name, ": expected a number, got '", get(name), "'");
  return *v;
}

}  // namespace polytask::cli
