// The synchronised BatchNorm (LayerCall::sync_batchnorm) on hand-built LayerCalls: one problem
// (a global batch, its dy, the layer's parameters and running statistics) run by one layer over
// the whole batch, or by `ranks` layers each over its shard (engine/communicator.h shard_of)
// through tests/support/thread_communicator.h. Shared by tests/engine/test_sync_batchnorm.cpp
// (the CPU, f64 and f32) and tests/engine_cuda/test_cuda_sync_batchnorm.cpp (the device).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/communicator.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "tests/support/gradcheck.h"
#include "tests/support/thread_communicator.h"

namespace polytask::testing {

constexpr double kBnMomentum = 0.9;  // far enough from 1 that the running update shows
constexpr double kBnEpsilon = 1e-3;

// One case of the shard tests: a sample shape, the global rows and how many ranks share them.
struct SyncCase {
  const char* label;
  Shape sample;
  int64_t rows;
  int ranks;
};

struct BnProblem {
  Shape sample;  // (F,) or (C, H, W)
  int64_t rows = 0;
  uint64_t seed = 1;
  double offset = 0.5;  // channel ch's inputs are centred on offset·(ch + 1)
  std::vector<double> x, dy;
  std::vector<double> gamma, beta, running_mean, running_var;

  BnProblem(Shape s, int64_t n, uint64_t sd, double off = 0.5)
      : sample(std::move(s)), rows(n), seed(sd), offset(off) {
    const int64_t c = sample[0], per_row = sample.numel(), spatial = per_row / c;
    x = random_vector<double>(size_t(rows * per_row), seed);
    for (int64_t i = 0; i < rows * per_row; ++i) {
      const int64_t ch = (i / spatial) % c;  // channels of different spread and centre
      x[size_t(i)] = x[size_t(i)] * (1.0 + 0.25 * double(ch)) + offset * double(ch + 1);
    }
    dy = random_vector<double>(size_t(rows * per_row), seed + 1);
    gamma = random_vector<double>(size_t(c), seed + 2, 0.5, 1.5);
    beta = random_vector<double>(size_t(c), seed + 3, -0.5, 0.5);
    running_mean = random_vector<double>(size_t(c), seed + 4, -0.5, 0.5);
    running_var = random_vector<double>(size_t(c), seed + 5, 0.5, 1.5);
  }
  int64_t per_row() const { return sample.numel(); }
};

// How backward is called.
struct BnModes {
  GradMode dx_mode = GradMode::Overwrite;
  GradMode param_mode = GradMode::Overwrite;
  bool want_dx = true;
  // Accumulate: what dx and the parameter gradients hold before backward.
  double dx_seed = 0.25, param_seed = -0.75;
};

// One layer's results, as doubles.
struct BnResult {
  std::vector<double> y, save_mean, save_invstd, running_mean, running_var, dx, dgamma, dbeta;
};

inline std::vector<double> rows_of(const std::vector<double>& all, int64_t per_row, int64_t begin,
                                   int64_t count) {
  return {all.begin() + begin * per_row, all.begin() + (begin + count) * per_row};
}

inline Tensor make_tensor(const Shape& shape, const std::vector<double>& values, DType dtype,
                          Device device) {
  Tensor cpu = dtype == DType::F64
                   ? Tensor::from_vector(shape, values)
                   : Tensor::from_vector(shape, std::vector<float>(values.begin(), values.end()));
  return cpu.to(device);
}

inline std::vector<double> values_of(const Tensor& t) {
  const Tensor cpu = t.to(Device::CPU);
  if (cpu.dtype() == DType::F64) return cpu.to_vector<double>();
  const auto f = cpu.to_vector<float>();
  return {f.begin(), f.end()};
}

// A BatchNorm over rows [begin, begin + count) of the problem: a training forward and a
// backward, synchronised through `comm` (null: not) over `global_rows` rows.
inline BnResult run_batchnorm(const BnProblem& p, int64_t begin, int64_t count, DType dtype,
                              Device device, Communicator* comm, int64_t global_rows,
                              const BnModes& modes = {}) {
  ModelBuilder b;
  const Value in = b.input("x", p.sample);
  const LayerRef ref =
      layers::batch_norm({.momentum = kBnMomentum, .epsilon = kBnEpsilon, .name = "bn"});
  (void)ref(in);
  const std::shared_ptr<Layer> layer = ref.ptr();
  const Shape channels{p.sample[0]};
  const std::vector<const std::vector<double>*> values = {&p.gamma, &p.beta, &p.running_mean,
                                                          &p.running_var};
  for (size_t i = 0; i < layer->parameters().size(); ++i) {
    Parameter& param = *layer->parameters()[i];
    param.value = make_tensor(channels, *values[i], dtype, device);
    if (param.trainable)
      param.grad = make_tensor(channels, std::vector<double>(size_t(channels[0]), modes.param_seed),
                               dtype, device);
  }
  const Shape batch_shape = p.sample.with_batch(count);
  std::vector<Tensor> x = {
      make_tensor(batch_shape, rows_of(p.x, p.per_row(), begin, count), dtype, device)};
  std::vector<Tensor> aux;
  for (const AuxSpec& spec : layer->aux({p.sample}, count))
    aux.push_back(Tensor::empty(spec.shape, dtype, device));
  const Tensor workspace = Tensor::empty(
      {std::max<int64_t>(1, layer->workspace_elements({p.sample}, count))}, dtype, device);
  const Tensor y = Tensor::empty(batch_shape, dtype, device);
  std::vector<Tensor> dx = {
      modes.want_dx ? make_tensor(batch_shape,
                                  std::vector<double>(size_t(count * p.per_row()), modes.dx_seed),
                                  dtype, device)
                    : Tensor()};
  const std::vector<GradMode> dx_mode = {modes.dx_mode};

  LayerCall c;
  c.x = x;
  c.y = y;
  c.aux = aux;
  c.workspace = workspace;
  c.training = true;
  c.first_row = begin;
  c.sync_batchnorm = comm;
  c.global_rows = global_rows;
  layer->forward(c);
  c.dy = make_tensor(batch_shape, rows_of(p.dy, p.per_row(), begin, count), dtype, device);
  c.dx = dx;
  c.dx_mode = dx_mode;
  c.param_mode = modes.param_mode;
  layer->backward(c);

  BnResult r;
  r.y = values_of(y);
  r.save_mean = values_of(aux[0]);
  r.save_invstd = values_of(aux[1]);
  r.running_mean = values_of(layer->parameters()[2]->value);
  r.running_var = values_of(layer->parameters()[3]->value);
  if (modes.want_dx) r.dx = values_of(dx[0]);
  r.dgamma = values_of(layer->parameters()[0]->grad);
  r.dbeta = values_of(layer->parameters()[1]->grad);
  return r;
}

// The whole batch on one layer, not synchronised.
inline BnResult run_single(const BnProblem& p, DType dtype, Device device,
                           const BnModes& modes = {}) {
  return run_batchnorm(p, 0, p.rows, dtype, device, nullptr, 0, modes);
}

// Each of `ranks` layers on its shard, synchronised; one result per rank.
inline std::vector<BnResult> run_sharded(const BnProblem& p, int ranks, DType dtype, Device device,
                                         const BnModes& modes = {}) {
  std::vector<BnResult> out(static_cast<size_t>(ranks));
  run_ranks(ranks, [&](Communicator& comm) {
    const Shard shard = shard_of(p.rows, comm.rank(), comm.size());
    out[size_t(comm.rank())] =
        run_batchnorm(p, shard.begin, shard.count, dtype, device, &comm, p.rows, modes);
  });
  return out;
}

// Tolerances. f64: both sides compute in double; they differ by summation order and the
// forward's shift (kernels/batchnorm.h), ~1e-15 relative to the terms. f32: both round the same
// double formulas once, from statistics that differ in the last bits of a double, so results
// are equal or an ulp apart — except that backward reads the float-rounded save_mean, which may
// itself be an ulp apart, moving terms by an ulp of the largest: a few ulps of the tensor's
// largest element.
struct BnTolerance {
  double rel, abs_of_largest;
};
inline BnTolerance bn_tolerance(DType dtype) {
  return dtype == DType::F64 ? BnTolerance{1e-12, 1e-12} : BnTolerance{2.4e-7, 4.8e-7};
}

inline double largest(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

inline ::testing::AssertionResult bn_close(const std::vector<double>& actual,
                                           const std::vector<double>& expected, DType dtype,
                                           double scale = 0.0) {
  const BnTolerance t = bn_tolerance(dtype);
  return all_close(actual, expected, t.rel, t.abs_of_largest * std::max(scale, largest(expected)));
}

// Checks (a)-(d): every shard's rows of y and dx are the whole-batch run's; save_mean,
// save_invstd and the running statistics are the same bits on every rank and the whole-batch
// run's values; the parameter gradients summed over the ranks are the whole-batch run's (with
// Accumulate, each rank's seed counted once).
inline void expect_shards_match(const BnProblem& p, const BnResult& single,
                                const std::vector<BnResult>& ranks, DType dtype,
                                const BnModes& modes = {}) {
  const int n = int(ranks.size());
  std::vector<double> dgamma(single.dgamma.size(), 0.0), dbeta(single.dbeta.size(), 0.0);
  double dgamma_scale = 0.0, dbeta_scale = 0.0;
  for (int r = 0; r < n; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r) + " of " + std::to_string(n));
    const BnResult& got = ranks[size_t(r)];
    const Shard shard = shard_of(p.rows, r, n);
    EXPECT_TRUE(bn_close(got.y, rows_of(single.y, p.per_row(), shard.begin, shard.count), dtype,
                         largest(single.y)))
        << "y";
    EXPECT_TRUE(bn_close(got.save_mean, single.save_mean, dtype)) << "save_mean";
    EXPECT_TRUE(bn_close(got.save_invstd, single.save_invstd, dtype)) << "save_invstd";
    EXPECT_TRUE(bn_close(got.running_mean, single.running_mean, dtype)) << "running_mean";
    EXPECT_TRUE(bn_close(got.running_var, single.running_var, dtype)) << "running_var";
    // The same bits on every rank: what keeps the replicas identical.
    EXPECT_EQ(got.running_mean, ranks[0].running_mean);
    EXPECT_EQ(got.running_var, ranks[0].running_var);
    EXPECT_EQ(got.save_mean, ranks[0].save_mean);
    EXPECT_EQ(got.save_invstd, ranks[0].save_invstd);
    if (modes.want_dx) {
      EXPECT_TRUE(bn_close(got.dx, rows_of(single.dx, p.per_row(), shard.begin, shard.count), dtype,
                           largest(single.dx)))
          << "dx";
    }
    const double seed = modes.param_mode == GradMode::Accumulate ? modes.param_seed : 0.0;
    for (size_t ch = 0; ch < dgamma.size(); ++ch) {
      // With Accumulate, single holds seed + g and every rank seed + g_r: Σ_r (got - seed) + seed.
      dgamma[ch] += got.dgamma[ch] - seed;
      dbeta[ch] += got.dbeta[ch] - seed;
    }
    dgamma_scale = std::max(dgamma_scale, largest(got.dgamma));
    dbeta_scale = std::max(dbeta_scale, largest(got.dbeta));
  }
  const double seed = modes.param_mode == GradMode::Accumulate ? modes.param_seed : 0.0;
  for (size_t ch = 0; ch < dgamma.size(); ++ch) {
    dgamma[ch] += seed;
    dbeta[ch] += seed;
  }
  // Each rank's gradient is rounded once; their sum carries n roundings of its terms.
  EXPECT_TRUE(bn_close(dgamma, single.dgamma, dtype, double(n) * dgamma_scale)) << "Σ dgamma";
  EXPECT_TRUE(bn_close(dbeta, single.dbeta, dtype, double(n) * dbeta_scale)) << "Σ dbeta";
}

}  // namespace polytask::testing
