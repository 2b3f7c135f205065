// Where a run directory's checkpoint files live, and how a new pair of them replaces the old
// pair in one atomic step (see checkpoint.h for the layout and why).
#pragma once

#include <string>
#include <vector>

namespace polytask {

inline constexpr const char* kCheckpointCurrentLink = "current";
inline constexpr const char* kCheckpointsDir = "checkpoints";

// The directory that holds the checkpoint files of run directory `dir`: DIR/current when it
// exists (the committed pair), else DIR itself (run directories written before the switch
// existed keep their two files at the top level).
std::string checkpoint_files_dir(const std::string& dir);

// One save: files are written into a fresh DIR/checkpoints/<n> (file_path), which nothing
// refers to yet; commit() then makes it the current pair by one rename(2) of a symlink, makes
// the top-level file names links into current/, and removes every other checkpoints/ entry.
// Destroying a CheckpointCommit without commit() leaves the previous pair current; the
// abandoned directory is removed by the next commit.
class CheckpointCommit {
 public:
  explicit CheckpointCommit(std::string dir);
  // Where to write `file` (kCheckpointModelFile...) of the new pair.
  std::string file_path(const char* file) const;
  // `files`: the names written, each linked at the top level as current/<file>.
  void commit(const std::vector<const char*>& files);

 private:
  std::string dir_, name_;  // name_: "checkpoints/<n>", relative to dir_
};

// Removes the temporary files of writers that can no longer finish ("<name>.tmp-<pid>", as
// AtomicFile and CheckpointCommit name them) from DIR and DIR/checkpoints/*: those of a
// process that has ended, or whose pid now belongs to another program. A writer still alive
// running this executable keeps its files. Returns the paths removed.
std::vector<std::string> remove_stale_temporary_files(const std::string& dir);

// Test seam for crash and I/O-error tests. With POLYTASK_TEST_CHECKPOINT_FAULT="ACTION:POINT[:N]"
// in the environment, the N-th arrival (default 1st) of this process at `point` fails:
//   "exit"   ends the process at once with kCheckpointFaultExitCode and no clean-up (as a kill
//            leaves the files);
//   "throw"  throws an Error (a failed step);
//   "enospc", "eio"  fail as the system call would with that errno: at the file points the
//            writer's own error path runs (AtomicFile removes its temporary and names the errno).
// Points, in save order: model-written, state-written, before-switch, after-switch,
// between-links, linked; and in every AtomicFile (each checkpoint file, run.conf...):
// file-write (each write call) and file-sync (its fsync). Without the variable nothing happens.
inline constexpr int kCheckpointFaultExitCode = 86;
void checkpoint_fault_point(const char* point);
// For a writer's own error path: the errno to fail with at `point` (0: carry on). "exit" and
// "throw" act as in checkpoint_fault_point.
int checkpoint_fault_errno(const char* point);

}  // namespace polytask
