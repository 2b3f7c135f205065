// The seam of data-parallel training: the ranks of one job (processes started by mpirun or any
// launcher that sets the MPI environment), what they add up and what rank 0 hands out. The
// network, the fan-out and the trainer see only this interface; the implementations live in
// comm/ (MPI between processes on the CPU, NCCL between GPUs with MPI to start it), and a
// single-process run uses SingleProcess, whose every collective is a no-op.
//
// Every collective is called by every rank, in the same order, with the same count: that is
// what keeps the ranks in step (they take identical optimiser steps on identical sums). A rank
// that stops calling them — an error, a kill — must not leave the others waiting for ever: the
// implementations give up after timeout_seconds and throw polytask::Error naming the
// collective, which the CLI turns into one line and an abort of the whole job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace polytask {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool is_root() const { return rank() == 0; }
  // True only for SingleProcess: the engine then skips every data-parallel step. Any other
  // communicator — one rank of `mpirun -np 1` included — runs them, so a one-rank job takes the
  // whole data-parallel path (and gives the single process's bits: every sum is over one rank).
  virtual bool single_process() const { return false; }
  // "single process", "MPI (OpenMPI 4.1.4)", "NCCL 2.28 over MPI": for the run's first line.
  virtual std::string describe() const = 0;

  // In-place sums over the ranks of host buffers. `what` names the data in a timeout message.
  virtual void allreduce_sum(double* data, size_t count, const char* what) = 0;
  virtual void allreduce_sum(float* data, size_t count, const char* what) = 0;
  // The same for buffers in GPU memory, queued on the engine's CUDA stream (engine/device.h).
  // NCCL reduces them there, asynchronously and inside a CUDA graph being captured
  // (device_capturable()); MPI copies them to the host and back, waiting for the stream.
  virtual void allreduce_sum_device(float* data, size_t count, const char* what) = 0;
  virtual void allreduce_sum_device(double* data, size_t count, const char* what) = 0;
  virtual bool device_capturable() const { return false; }
  // Rank root's bytes to every rank (host memory).
  virtual void broadcast(void* data, size_t bytes, int root, const char* what) = 0;
  // Every rank has reached this point (e.g. rank 0 finished writing a checkpoint).
  virtual void barrier(const char* what) = 0;

  // How long a collective waits for the slowest rank before it gives up (seconds).
  double timeout_seconds() const { return timeout_seconds_; }
  void set_timeout_seconds(double seconds) { timeout_seconds_ = seconds; }

  // Seconds this process has spent inside host-side collectives (waiting for the other ranks
  // included): the trainer reports each epoch's share. Collectives queued on the GPU stream
  // (NCCL) are not in it.
  virtual double seconds_in_collectives() const { return seconds_in_collectives_; }

 protected:
  void add_seconds_in_collectives(double seconds) { seconds_in_collectives_ += seconds; }

 private:
  double timeout_seconds_ = 600;
  double seconds_in_collectives_ = 0;
};

// One process: rank 0 of 1; every collective leaves the data as it is, at no cost.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool single_process() const override { return true; }
  std::string describe() const override { return "single process"; }
  void allreduce_sum(double*, size_t, const char*) override {}
  void allreduce_sum(float*, size_t, const char*) override {}
  void allreduce_sum_device(float*, size_t, const char*) override {}
  void allreduce_sum_device(double*, size_t, const char*) override {}
  bool device_capturable() const override { return true; }
  void broadcast(void*, size_t, int, const char*) override {}
  void barrier(const char*) override {}
};

// Rank `rank`'s share of `rows` rows split over `ranks` ranks: contiguous, the first rows % ranks
// ranks one row more, so any global batch is cut the same way whatever runs it.
struct Shard {
  int64_t begin = 0, count = 0;
};
inline Shard shard_of(int64_t rows, int rank, int ranks) {
  const int64_t base = rows / ranks, extra = rows % ranks;
  const int64_t begin = rank * base + (rank < extra ? rank : extra);
  return {begin, base + (rank < extra ? 1 : 0)};
}

}  // namespace polytask
