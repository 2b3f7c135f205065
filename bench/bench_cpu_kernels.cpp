// The CPU kernel table: polytask's float GEMM and convolution micro-kernels (every
// instruction-set variant this CPU runs, kernels/cpu/isa.h) against OpenBLAS's sgemm in the same
// run, each as a fraction of this machine's measured FMA peak (printed in the context:
// `peak_gflops_<variant>`, all threads probing at once; counter `of_peak`).
//
//   bench_cpu_kernels                                  # everything, OMP_NUM_THREADS threads
//   bench_cpu_kernels --benchmark_filter=BM_Gemm       # GEMM shapes only
//   OPENBLAS_CORETYPE=SkylakeX bench_cpu_kernels ...   # OpenBLAS with the kernels it lacks a
//                                                      # table entry for (its best case here)
//
// GEMM shapes: the workload's dense layers (batch 128, 1600 -> 128) in their three layouts, the
// conv2 forward as one im2col chunk's GEMM, and a square 512^3. Convolutions: the workload's two
// layers at batch 128, each pass on the im2col and the direct path.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/random_floats.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_fast.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/sgemm.h"

namespace {

namespace cpu = polytask::kernels::cpu;
using polytask::kernels::Conv2dShape;
using polytask::kernels::GradMode;
using polytask::kernels::Transpose;

using polytask::bench::random_floats;

// Peak FLOP/s of each variant with every thread probing; measured once.
double peak_of(cpu::CpuIsa isa) {
  static double peaks[3] = {0, 0, 0};
  double& p = peaks[int(isa)];
  if (p == 0) p = cpu::measured_peak_flops(cpu::micro_kernels(isa), omp_get_max_threads());
  return p;
}

// Times the loop itself (wall clock: the work runs on OpenMP threads) and sets FLOP (per second)
// and of_peak: that rate over the measured peak of the same variant (OpenBLAS rows: over the
// widest variant's peak, what the machine can do).
template <class Run>
void time_loop(benchmark::State& state, double flop_per_call, cpu::CpuIsa isa, Run run) {
  for (int i = 0; i < 3; ++i) run();  // warm-up: scratch buffers, caches, thread team
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = flop_per_call * double(state.iterations()) / seconds;
  state.counters["FLOP"] = rate;
  state.counters["of_peak"] = rate / peak_of(isa);
}

struct GemmShape {
  const char* name;
  Transpose ta, tb;
  int64_t m, n, k;
};
const GemmShape kGemms[] = {
    {"dense_forward_128x128x1600_NT", Transpose::No, Transpose::Yes, 128, 128, 1600},
    {"dense_backward_data_128x1600x128_NN", Transpose::No, Transpose::No, 128, 1600, 128},
    {"dense_backward_filter_128x1600x128_TN", Transpose::Yes, Transpose::No, 128, 1600, 128},
    {"conv2_im2col_chunk_64x968x288_NN", Transpose::No, Transpose::No, 64, 968, 288},
    {"square_512_NN", Transpose::No, Transpose::No, 512, 512, 512},
};

// impl: an instruction-set variant of ours, or -1 for OpenBLAS.
void BM_Gemm(benchmark::State& state, GemmShape g, int impl) {
  const int64_t a_rows = g.ta == Transpose::No ? g.m : g.k, a_cols = g.ta == Transpose::No ? g.k : g.m;
  const int64_t b_rows = g.tb == Transpose::No ? g.k : g.n, b_cols = g.tb == Transpose::No ? g.n : g.k;
  const auto a = random_floats(size_t(a_rows * a_cols), 1), b = random_floats(size_t(b_rows * b_cols), 2);
  std::vector<float> c(size_t(g.m * g.n));
  const auto run = [&] {
    if (impl < 0) {
      cblas_sgemm(CblasRowMajor, g.ta == Transpose::Yes ? CblasTrans : CblasNoTrans,
                  g.tb == Transpose::Yes ? CblasTrans : CblasNoTrans, blasint(g.m), blasint(g.n),
                  blasint(g.k), 1.0f, a.data(), blasint(a_cols), b.data(), blasint(b_cols), 0.0f,
                  c.data(), blasint(g.n));
    } else {
      cpu::sgemm(cpu::micro_kernels(cpu::CpuIsa(impl)), g.ta, g.tb, g.m, g.n, g.k, 1.0f, a.data(),
                 a_cols, b.data(), b_cols, 0.0f, c.data(), g.n);
    }
  };
  time_loop(state, 2.0 * double(g.m) * double(g.n) * double(g.k),
            impl < 0 ? cpu::widest_supported_isa() : cpu::CpuIsa(impl), run);
}

enum class Pass { Forward, BackwardData, BackwardFilter };
const char* pass_name(Pass p) {
  return p == Pass::Forward ? "forward" : p == Pass::BackwardData ? "backward_data" : "backward_filter";
}

void BM_Conv(benchmark::State& state, Conv2dShape s, Pass pass, cpu::ConvPath path, int isa) {
  const auto& uk = cpu::micro_kernels(cpu::CpuIsa(isa));
  const size_t xs = size_t(s.n * s.c_in * s.h_in * s.w_in), ys = size_t(s.n * s.c_out * s.out_pixels());
  const auto x = random_floats(xs, 3), dy = random_floats(ys, 4);
  const auto w = random_floats(size_t(s.c_out * s.patch_size()), 5), b = random_floats(size_t(s.c_out), 6);
  std::vector<float> y(ys), dx(xs), dw(w.size()), db(b.size());
  const auto run = [&] {
    switch (pass) {
      case Pass::Forward:
        cpu::conv2d_forward_fast(uk, s, x.data(), w.data(), b.data(), y.data(), true, path);
        break;
      case Pass::BackwardData:
        cpu::conv2d_backward_data_fast(uk, s, dy.data(), w.data(), dx.data(), GradMode::Overwrite,
                                       path);
        break;
      case Pass::BackwardFilter:
        cpu::conv2d_backward_filter_fast(uk, s, x.data(), dy.data(), dw.data(), db.data(),
                                         GradMode::Overwrite, path);
        break;
    }
  };
  time_loop(state, s.forward_flops(), cpu::CpuIsa(isa), run);
}

void register_all() {
  const auto ms = [](benchmark::internal::Benchmark* b) {
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
  };
  std::vector<int> impls;
  for (cpu::CpuIsa isa : cpu::kAllCpuIsas)
    if (cpu::cpu_supports(isa)) impls.push_back(int(isa));
  for (const GemmShape& g : kGemms) {
    for (int impl : impls)
      ms(benchmark::RegisterBenchmark(
          (std::string("BM_Gemm/") + g.name + "/polytask_" + cpu::isa_name(cpu::CpuIsa(impl))).c_str(),
          BM_Gemm, g, impl));
    ms(benchmark::RegisterBenchmark((std::string("BM_Gemm/") + g.name + "/openblas").c_str(),
                                    BM_Gemm, g, -1));
  }
  using polytask::kernels::conv2d_shape;
  using polytask::kernels::Padding;
  const std::pair<const char*, Conv2dShape> layers[] = {
      {"conv1_28x28x1_to_32", conv2d_shape(128, 1, 28, 28, 32, 3, 3, 1, 1, Padding::Valid)},
      {"conv2_13x13x32_to_64", conv2d_shape(128, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid)},
  };
  const int widest = int(cpu::widest_supported_isa());
  for (const auto& [name, s] : layers)
    for (Pass pass : {Pass::Forward, Pass::BackwardData, Pass::BackwardFilter})
      for (cpu::ConvPath path : {cpu::ConvPath::Im2col, cpu::ConvPath::Direct})
        ms(benchmark::RegisterBenchmark(
            (std::string("BM_Conv/") + name + "/" + pass_name(pass) + "/" +
             (path == cpu::ConvPath::Direct ? "direct" : "im2col") + "/" +
             cpu::isa_name(cpu::CpuIsa(widest)))
                .c_str(),
            BM_Conv, s, pass, path, widest));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("cpu_kernels", cpu::isa_description());
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  for (cpu::CpuIsa isa : cpu::kAllCpuIsas)
    if (cpu::cpu_supports(isa)) {
      char text[32];
      std::snprintf(text, sizeof text, "%.1f", peak_of(isa) / 1e9);
      benchmark::AddCustomContext(std::string("peak_gflops_") + cpu::isa_name(isa), text);
    }
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
