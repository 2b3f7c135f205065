#include "engine/checkpoint_layout.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "engine/safetensors.h"
#include "kernels/error.h"

namespace polytask {

namespace fs = std::filesystem;

namespace {

std::string in_dir(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// The checkpoint number of a checkpoints/ entry ("00000012" -> 12), or -1.
long long checkpoint_number(const std::string& name) {
  if (name.empty() || name.size() > 18) return -1;
  for (char c : name)
    if (c < '0' || c > '9') return -1;
  return std::stoll(name);
}

// Points `link` at `target` atomically: a new symlink under a temporary name, renamed over it.
void replace_symlink(const std::string& link, const std::string& target) {
  const std::string temp = link + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(temp, ec);
  fs::create_symlink(target, temp, ec);
  if (ec) fail("cannot create the symlink ", temp, " -> ", target, ": ", ec.message());
  if (std::rename(temp.c_str(), link.c_str()) != 0) {
    const int error = errno;
    fs::remove(temp, ec);
    fail("cannot rename ", temp, " over ", link, ": ", std::strerror(error));
  }
}

bool is_symlink_to(const std::string& link, const std::string& target) {
  std::error_code ec;
  return fs::is_symlink(fs::symlink_status(link, ec)) && fs::read_symlink(link, ec) == target &&
         !ec;
}

// The pid in a temporary file's name ("model.safetensors.tmp-1234" -> 1234), or 0.
pid_t temporary_owner(const std::string& name) {
  const auto at = name.rfind(".tmp-");
  if (at == std::string::npos || at + 5 == name.size() || name.size() - at - 5 > 9) return 0;
  for (size_t i = at + 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return 0;
  return pid_t(std::stol(name.substr(at + 5)));
}

// Whether process `pid` may still finish writing its temporary file: it is alive and runs
// this executable (a pid reused by another program cannot). Unsure (no /proc): yes.
bool may_still_write(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::error_code ec1, ec2;
  const fs::path theirs = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec1);
  const fs::path ours = fs::read_symlink("/proc/self/exe", ec2);
  if (ec2) return true;
  if (ec1) return !fs::exists("/proc/" + std::to_string(pid));  // gone meanwhile: no
  return theirs == ours;
}

}  // namespace

std::string checkpoint_files_dir(const std::string& dir) {
  const std::string current = in_dir(dir, kCheckpointCurrentLink);
  std::error_code ec;
  return fs::exists(fs::symlink_status(current, ec)) ? current : dir;
}

CheckpointCommit::CheckpointCommit(std::string dir) : dir_(std::move(dir)) {
  const std::string checkpoints = in_dir(dir_, kCheckpointsDir);
  std::error_code ec;
  fs::create_directories(checkpoints, ec);
  if (ec) fail("cannot create checkpoint directory ", checkpoints, ": ", ec.message());
  // One more than any number there, so the new directory is not the current one, nor an
  // abandoned one of an interrupted save.
  long long next = 1;
  for (const auto& entry : fs::directory_iterator(checkpoints, ec))
    next = std::max(next, checkpoint_number(entry.path().filename().string()) + 1);
  if (ec) fail("cannot list checkpoint directory ", checkpoints, ": ", ec.message());
  char number[24];
  std::snprintf(number, sizeof number, "%08lld", next);
  name_ = (fs::path(kCheckpointsDir) / number).string();
  fs::create_directory(in_dir(dir_, name_), ec);
  if (ec) fail("cannot create checkpoint directory ", in_dir(dir_, name_), ": ", ec.message());
}

std::string CheckpointCommit::file_path(const char* file) const {
  return in_dir(in_dir(dir_, name_), file);
}

void CheckpointCommit::commit(const std::vector<const char*>& files) {
  // The new directory's entry in checkpoints/ must be durable before anything points at it
  // (its files were synced, with the directory itself, as they were written).
  sync_directory(in_dir(dir_, kCheckpointsDir));
  checkpoint_fault_point("before-switch");
  // The switch: from here on the new pair is the checkpoint, whatever happens next.
  replace_symlink(in_dir(dir_, kCheckpointCurrentLink), name_);
  sync_directory(dir_);
  checkpoint_fault_point("after-switch");
  // The names users and Python open. Loading reads current/, so a kill between these two
  // renames (or before them: an old run's plain files) mixes nothing.
  bool first = true;
  for (const char* file : files) {
    if (!first) checkpoint_fault_point("between-links");
    first = false;
    const std::string target = (fs::path(kCheckpointCurrentLink) / file).string();
    if (!is_symlink_to(in_dir(dir_, file), target)) replace_symlink(in_dir(dir_, file), target);
  }
  sync_directory(dir_);
  checkpoint_fault_point("linked");
  // Older pairs and abandoned saves. A failure here costs disk space only: the next commit
  // tries again.
  std::error_code ec;
  const std::string keep = fs::path(name_).filename().string();
  for (const auto& entry : fs::directory_iterator(in_dir(dir_, kCheckpointsDir), ec))
    if (entry.path().filename().string() != keep) fs::remove_all(entry.path(), ec);
}

std::vector<std::string> remove_stale_temporary_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::vector<fs::path> dirs = {dir};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(in_dir(dir, kCheckpointsDir), ec))
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) dirs.push_back(entry.path());
  for (const fs::path& d : dirs)
    for (const auto& entry : fs::directory_iterator(d, ec)) {
      const pid_t pid = temporary_owner(entry.path().filename().string());
      if (pid <= 0 || may_still_write(pid)) continue;
      std::error_code removing;
      if (fs::remove(entry.path(), removing)) removed.push_back(entry.path().string());
    }
  return removed;
}

int checkpoint_fault_errno(const char* point) {
  const char* spec = std::getenv("POLYTASK_TEST_CHECKPOINT_FAULT");
  if (!spec || !*spec) return 0;
  const std::string text = spec;
  const auto colon = text.find(':');
  const std::string action = text.substr(0, colon);
  std::string where = colon == std::string::npos ? "" : text.substr(colon + 1);
  int wanted = 1;
  if (const auto count = where.find(':'); count != std::string::npos) {
    wanted = std::atoi(where.c_str() + count + 1);
    where.resize(count);
  }
  if (where != point) return 0;
  // Arrivals are counted per setting, so a test may set the same one again.
  static std::string counted_for;
  static std::map<std::string, int> arrivals;
  if (counted_for != text) arrivals.clear(), counted_for = text;
  if (++arrivals[where] != wanted) return 0;
  if (action == "exit") ::_exit(kCheckpointFaultExitCode);
  if (action == "enospc") return ENOSPC;
  if (action == "eio") return EIO;
  if (action != "throw")
    fail("POLYTASK_TEST_CHECKPOINT_FAULT: unknown action '", action,
         "' (exit, throw, enospc or eio)");
  fail("checkpoint fault injected at ", point, " (POLYTASK_TEST_CHECKPOINT_FAULT)");
}

void checkpoint_fault_point(const char* point) {
  if (const int error = checkpoint_fault_errno(point))
    fail("checkpoint fault injected at ", point, ": ", std::strerror(error),
         " (POLYTASK_TEST_CHECKPOINT_FAULT)");
}

}  // namespace polytask
