// Whole files as bytes, for tests that write, cut or corrupt files and read them back.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace polytask::testing {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace polytask::testing
