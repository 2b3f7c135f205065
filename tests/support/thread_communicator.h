// A Communicator for tests: N ranks that are N threads of one process, meeting in shared memory.
//
// Each collective is a rendezvous: a rank leaves its contribution and waits until all N have
// come; the last to arrive combines them — sums in rank order 0..N-1, so every rank gets the
// same bits, as the real implementations promise — and each rank takes the result. Broadcast
// hands out the root's bytes; barrier only waits. Every rank must call the same collective
// (same kind, `what` and size) at each step: a mismatch fails every rank with a message naming
// both calls, and a rank that does not come within timeout_seconds() fails the waiting ones
// (polytask::Error naming the collective), as the MPI/NCCL implementations do.
//
// The ranks take turns: run_ranks lets one thread run at a time, passing the turn on at every
// collective (a rank waiting for the others gives it up). So the engine's shared state — the
// one CUDA stream, the CPU emulator of the CUDA kernels, which runs one kernel at a time — sees
// one caller at a time, and a test is deterministic; the ranks still interleave at each
// collective exactly as separate processes would have to.
//
// allreduce_sum_device copies through the host (engine copy_bytes, which waits for the stream).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/communicator.h"
#include "engine/device.h"
#include "kernels/error.h"

namespace polytask::testing {

// What the N ranks share.
class ThreadGroup {
 public:
  explicit ThreadGroup(int ranks) : ranks_(ranks), contributions_(size_t(ranks)) {
    if (ranks < 1) fail("ThreadGroup: needs at least one rank, got ", ranks);
  }
  int size() const { return ranks_; }

  // The turn: held by the one rank that runs (run_ranks takes it around each rank's body).
  void take_turn() { turn_.lock(); }
  void give_turn() { turn_.unlock(); }

  // A rank failed outside a collective: the ones waiting (and any that come later) give up at
  // once instead of waiting for the timeout.
  void abort(const std::string& reason) {
    const std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = reason;
    changed_.notify_all();
  }

  // The rendezvous. `kind` and `what` name the collective; `bytes` from `data` are this rank's
  // contribution; once all N ranks are in, combine(contributions, result) runs once (on the
  // last rank to arrive), and every rank's `data` receives `result_bytes` of the result.
  // Called with the turn held; gives it up while waiting.
  using Combine = std::function<void(const std::vector<std::vector<unsigned char>>&,
                                     std::vector<unsigned char>&)>;
  void exchange(int rank, const char* kind, const char* what, void* data, size_t bytes,
                size_t result_bytes, const Combine& combine, double timeout_seconds) {
    const std::string call =
        std::string(kind) + " of " + std::to_string(bytes) + " bytes (" + (what ? what : "") + ")";
    std::unique_lock lock(mutex_);
    if (!failure_.empty()) fail("rank ", rank, ": ", call, ": ", failure_);
    const uint64_t generation = generation_;
    if (arrived_ == 0) {
      call_ = call;
    } else if (call != call_) {
      failure_ = "the ranks disagree on the collective: " + call_ + " vs " + call;
      changed_.notify_all();
      fail("rank ", rank, ": ", failure_);
    }
    contributions_[size_t(rank)].assign(static_cast<const unsigned char*>(data),
                                        static_cast<const unsigned char*>(data) + bytes);
    if (++arrived_ == ranks_) {
      combine(contributions_, result_);
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
    } else {
      give_turn();
      const bool done =
          changed_.wait_for(lock, std::chrono::duration<double>(timeout_seconds),
                            [&] { return generation_ != generation || !failure_.empty(); });
      const bool completed = generation_ != generation;
      if (!completed) {
        std::string reason = failure_;
        if (!done) {
          reason = "timed out after " + std::to_string(timeout_seconds) + " s with " +
                   std::to_string(arrived_) + " of " + std::to_string(ranks_) + " ranks in";
          failure_ = "another rank timed out in " + call;
          changed_.notify_all();
        }
        lock.unlock();
        take_turn();
        fail("rank ", rank, ": ", call, ": ", reason);
      }
      // The result stays until the next collective completes, which needs this rank too.
      lock.unlock();
      take_turn();
      lock.lock();
    }
    if (result_bytes > 0) std::memcpy(data, result_.data(), result_bytes);
  }

 private:
  const int ranks_;
  std::mutex turn_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::vector<std::vector<unsigned char>> contributions_;
  std::vector<unsigned char> result_;
  std::string call_;     // the collective the ranks in are waiting at
  std::string failure_;  // set once: every later collective fails with it
  int arrived_ = 0;
  uint64_t generation_ = 0;  // collectives completed
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  std::string describe() const override {
    return std::to_string(size()) + " threads (tests/support/thread_communicator.h)";
  }

  void allreduce_sum(double* data, size_t count, const char* what) override {
    sum(data, count, "allreduce_sum(double)", what);
  }
  void allreduce_sum(float* data, size_t count, const char* what) override {
    sum(data, count, "allreduce_sum(float)", what);
  }
  void allreduce_sum_device(float* data, size_t count, const char* what) override {
    sum_device(data, count, what);
  }
  void allreduce_sum_device(double* data, size_t count, const char* what) override {
    sum_device(data, count, what);
  }
  void broadcast(void* data, size_t bytes, int root, const char* what) override {
    if (root < 0 || root >= size()) fail("broadcast (", what, "): root ", root, " out of range");
    group_->exchange(
        rank_, ("broadcast from " + std::to_string(root)).c_str(), what, data, bytes, bytes,
        [root](const auto& in, auto& out) { out = in[size_t(root)]; }, timeout_seconds());
  }
  void barrier(const char* what) override {
    group_->exchange(
        rank_, "barrier", what, nullptr, 0, 0, [](const auto&, auto&) {}, timeout_seconds());
  }

 private:
  template <class T>
  void sum(T* data, size_t count, const char* kind, const char* what) {
    group_->exchange(
        rank_, kind, what, data, count * sizeof(T), count * sizeof(T),
        [count](const std::vector<std::vector<unsigned char>>& in,
                std::vector<unsigned char>& out) {
          std::vector<T> total(count, T(0)), part(count);
          for (const auto& bytes : in) {  // rank order
            std::memcpy(part.data(), bytes.data(), count * sizeof(T));
            for (size_t i = 0; i < count; ++i) total[i] += part[i];
          }
          out.resize(count * sizeof(T));
          std::memcpy(out.data(), total.data(), out.size());
        },
        timeout_seconds());
  }
  template <class T>
  void sum_device(T* data, size_t count, const char* what) {
    std::vector<T> host(count);
    copy_bytes(host.data(), Device::CPU, data, Device::CUDA, count * sizeof(T));
    sum(host.data(), count,
        sizeof(T) == sizeof(double) ? "allreduce_sum_device(double)"
                                    : "allreduce_sum_device(float)",
        what);
    copy_bytes(data, Device::CUDA, host.data(), Device::CPU, count * sizeof(T));
  }

  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

// Runs body(communicator) on `ranks` threads, one rank each, taking turns (see above); joins
// them and rethrows the first exception a rank threw (the cause: a rank that throws fails the
// others' next collective at once, and their errors come later).
inline void run_ranks(int ranks, const std::function<void(Communicator&)>& body,
                      double timeout_seconds = 60) {
  auto group = std::make_shared<ThreadGroup>(ranks);
  std::mutex first_mutex;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(group, r);
      comm.set_timeout_seconds(timeout_seconds);
      group->take_turn();
      try {
        body(comm);
      } catch (...) {
        std::string reason = "rank " + std::to_string(r) + " failed";
        try {
          throw;
        } catch (const std::exception& e) {
          reason += std::string(": ") + e.what();
        } catch (...) {
        }
        {
          const std::lock_guard lock(first_mutex);
          if (!first) first = std::current_exception();
        }
        group->abort(reason);
      }
      group->give_turn();
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace polytask::testing
