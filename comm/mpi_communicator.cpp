#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"

namespace polytask::comm {

namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail(call, " failed: ", std::string(text, size_t(length)));
}

// Waits for a non-blocking collective, polling: spinning first (a step's collectives are
// usually met within microseconds), then sleeping between polls so an oversubscribed machine
// keeps its cores for the ranks still computing. Throws after the communicator's timeout.
// Returns the seconds it waited.
double wait_for(MPI_Request& request, const Communicator& comm, const char* collective,
                const char* what) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto limit = std::chrono::duration<double>(comm.timeout_seconds());
  for (long polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return std::chrono::duration<double>(Clock::now() - start).count();
    if (polls > 4096) std::this_thread::sleep_for(std::chrono::microseconds(50));
    if ((polls & 63) == 0 && Clock::now() - start > limit)
      fail("the ", collective, " of ", what, " waited ", comm.timeout_seconds(),
           " s for the other ranks; one of them has stopped or hangs");
  }
}

template <class T>
double allreduce(const Communicator& comm, T* data, size_t count, MPI_Datatype type,
                 const char* what) {
  double seconds = 0;
  // MPI counts are int: a buffer of more than INT_MAX numbers goes in pieces.
  for (size_t done = 0; done < count;) {
    const int piece = int(std::min<size_t>(count - done, INT_MAX));
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, data + done, piece, type, MPI_SUM, MPI_COMM_WORLD, &request),
          "MPI_Iallreduce");
    seconds += wait_for(request, comm, "sum", what);
    done += size_t(piece);
  }
  return seconds;
}

// Device buffers go through the host: one copy down (waiting for the stream), the sum, one up.
template <class T>
void allreduce_through_host(Communicator& comm, T* data, size_t count, const char* what) {
  thread_local std::vector<T> host;
  host.resize(count);
  copy_bytes(host.data(), Device::CPU, data, Device::CUDA, count * sizeof(T));
  comm.allreduce_sum(host.data(), count, what);
  copy_bytes(data, Device::CUDA, host.data(), Device::CPU, count * sizeof(T));
}

}  // namespace

MpiCommunicator::MpiCommunicator() {
  // Errors come back as codes (turned into polytask::Error) instead of aborting the job
  // silently.
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

std::string MpiCommunicator::describe() const {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(version, &length);
  std::string text(version, size_t(length));
  text = text.substr(0, text.find_first_of(",\n"));  // "Open MPI v4.1.4, package: ..."
  return "MPI (" + text + "), " + std::to_string(size_) + " ranks";
}

void MpiCommunicator::allreduce_sum(double* data, size_t count, const char* what) {
  add_seconds_in_collectives(allreduce(*this, data, count, MPI_DOUBLE, what));
}

void MpiCommunicator::allreduce_sum(float* data, size_t count, const char* what) {
  add_seconds_in_collectives(allreduce(*this, data, count, MPI_FLOAT, what));
}

void MpiCommunicator::allreduce_sum_device(float* data, size_t count, const char* what) {
  allreduce_through_host(*this, data, count, what);
}

void MpiCommunicator::allreduce_sum_device(double* data, size_t count, const char* what) {
  allreduce_through_host(*this, data, count, what);
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root, const char* what) {
  auto* at = static_cast<char*>(data);
  for (size_t done = 0; done < bytes;) {
    const int piece = int(std::min<size_t>(bytes - done, INT_MAX));
    MPI_Request request;
    check(MPI_Ibcast(at + done, piece, MPI_BYTE, root, MPI_COMM_WORLD, &request), "MPI_Ibcast");
    add_seconds_in_collectives(wait_for(request, *this, "broadcast", what));
    done += size_t(piece);
  }
}

void MpiCommunicator::barrier(const char* what) {
  MPI_Request request;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "MPI_Ibarrier");
  add_seconds_in_collectives(wait_for(request, *this, "barrier", what));
}

}  // namespace polytask::comm
