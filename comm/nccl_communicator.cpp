#include "comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "engine/device.h"
#include "kernels/error.h"

namespace polytask::comm {

namespace {

void check_nccl(ncclResult_t result, const char* call) {
  if (result != ncclSuccess) fail(call, " failed: ", ncclGetErrorString(result));
}

void check_cuda(cudaError_t result, const char* call) {
  if (result != cudaSuccess) fail(call, " failed: ", cudaGetErrorString(result));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int local_rank, std::unique_ptr<Communicator> host) : host_(std::move(host)) {
    int devices = 0;
    check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    if (devices == 0) fail("NCCL: rank ", host_->rank(), " sees no GPU");
    check_cuda(cudaSetDevice(local_rank % devices), "cudaSetDevice");
    ncclUniqueId id{};
    if (host_->rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(&id, sizeof id, 0, "NCCL's unique id");
    check_nccl(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string describe() const override {
    int version = 0;
    ncclGetVersion(&version);
    return "NCCL " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) +
           " over " + host_->describe();
  }
  void allreduce_sum(double* data, size_t count, const char* what) override {
    sync_timeout();
    host_->allreduce_sum(data, count, what);
  }
  void allreduce_sum(float* data, size_t count, const char* what) override {
    sync_timeout();
    host_->allreduce_sum(data, count, what);
  }
  void allreduce_sum_device(float* data, size_t count, const char* what) override {
    reduce(data, count, ncclFloat32, what);
  }
  void allreduce_sum_device(double* data, size_t count, const char* what) override {
    reduce(data, count, ncclFloat64, what);
  }
  bool device_capturable() const override { return true; }
  double seconds_in_collectives() const override { return host_->seconds_in_collectives(); }
  void broadcast(void* data, size_t bytes, int root, const char* what) override {
    sync_timeout();
    host_->broadcast(data, bytes, root, what);
  }
  void barrier(const char* what) override {
    sync_timeout();
    host_->barrier(what);
  }

 private:
  void reduce(void* data, size_t count, ncclDataType_t type, const char* what) {
    if (count == 0) return;
    const ncclResult_t result =
        ncclAllReduce(data, data, count, type, ncclSum, comm_, cuda_stream());
    if (result != ncclSuccess)
      fail("NCCL: the sum of ", what, " failed on rank ", rank(), ": ", ncclGetErrorString(result));
  }
  void sync_timeout() { host_->set_timeout_seconds(timeout_seconds()); }
  // NCCL's host half: describe() names it.

  std::unique_ptr<Communicator> host_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int local_rank,
                                                     std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(local_rank, std::move(host));
}

}  // namespace polytask::comm
