// Shared by the libFuzzer targets of tests/fuzz (README there): the contract every target
// checks, and a scratch file for parsers whose API takes a path.
//
// The contract: whatever the bytes, a parser either succeeds or throws polytask::Error. Any
// other exception escapes LLVMFuzzerTestOneInput and aborts (libFuzzer reports it as a crash);
// ASan and UBSan report memory errors, leaks and undefined behaviour.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "kernels/error.h"

namespace polytask::fuzz {

// A private directory for this process's scratch files, under $TMPDIR (CI points it at a
// tmpfs when it can), removed at exit.
inline const std::string& scratch_dir() {
  // Never destroyed: the atexit handler below runs after static destructors registered later.
  static const std::string* const dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/polytask-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("polytask fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return new std::string(pattern);
  }();
  return *dir;
}

// Writes `size` bytes to scratch_dir()/name (replacing it) and returns its path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(("polytask fuzz: cannot write " + path).c_str());
    std::abort();
  }
  return path;
}

// Runs `parse`; a polytask::Error is an accepted outcome (its message must not be empty:
// the CLI prints it as the one line a user sees).
template <class Parse>
void expect_success_or_error(Parse&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    if (e.what()[0] == '\0') {
      std::fputs("polytask fuzz: an Error with an empty message\n", stderr);
      std::abort();
    }
  }
}

}  // namespace polytask::fuzz
