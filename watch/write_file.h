// Writing a picture (or any small file) so that readers never see half of it: a viewer or
// TensorBoard refreshing while a run redraws its curves sees the old picture or the new one.
#pragma once

#include <string>

namespace polytask::watch {

// Writes `bytes` to a temporary file in the directory of `path` and renames it over `path`
// (engine/safetensors.h: AtomicFile). Throws polytask::Error naming `path` on any failure, e.g.
// when its directory does not exist; an existing `path` is then left as it was.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace polytask::watch
