// The one exception type of polytask. Library code throws it with a message that says what
// went wrong and where (op or layer name, file and byte offset, expected vs actual shape);
// only the command-line front end turns it into a printed line and an exit code.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace polytask {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates anything that streams: cat("layer ", name, ": expected ", 3, " inputs").
template <class... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(cat(std::forward<Parts>(parts)...));
}

}  // namespace polytask
