// What the Python interop tests share: finding a Python that can import the reference library
// (python3 on PATH may be a pyenv shim without it while the system one has it, or the other way
// round) and running a command with its output captured for the failure message.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace polytask::testing {

// "python3" or "/usr/bin/python3", whichever first runs `import <modules>` (e.g.
// "safetensors, numpy"); "" when neither does: the test then skips, naming the modules.
inline std::string python_that_imports(const std::string& modules) {
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    const std::string probe = std::string(py) + " -c 'import " + modules + "' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return py;
  }
  return "";
}

// Runs a shell command; returns its wait status (0: exited 0) and its stdout and stderr.
inline std::pair<int, std::string> run_command(const std::string& command) {
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  return {::pclose(p), out};
}

}  // namespace polytask::testing
