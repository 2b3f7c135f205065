#include "watch/write_file.h"

#include "engine/safetensors.h"

namespace polytask::watch {

void write_file_atomically(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace polytask::watch
