// The Communicator of CPU processes: MPI's allreduce, broadcast and barrier on
// MPI_COMM_WORLD, each started non-blocking and waited for with a deadline, so a rank that died
// or hangs makes the others throw instead of waiting for ever. Device buffers are copied to the
// host, reduced there and copied back (waiting for the CUDA stream): right for CPU training and
// for a GPU build without NCCL, never captured in a CUDA graph.
#pragma once

#include "engine/communicator.h"

namespace polytask::comm {

class MpiCommunicator final : public Communicator {
 public:
  // MPI must be initialised (comm::connect does it).
  MpiCommunicator();

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override;
  void allreduce_sum(double* data, size_t count, const char* what) override;
  void allreduce_sum(float* data, size_t count, const char* what) override;
  void allreduce_sum_device(float* data, size_t count, const char* what) override;
  void allreduce_sum_device(double* data, size_t count, const char* what) override;
  void broadcast(void* data, size_t bytes, int root, const char* what) override;
  void barrier(const char* what) override;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace polytask::comm
