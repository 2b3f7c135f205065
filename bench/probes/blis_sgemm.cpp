// A one-off probe, not part of the build: BLIS 0.9 (Debian's libblis4-openmp) sgemm at the
// shapes of the CPU kernel table (bench_cpu_kernels' GEMM rows), to set the library option the
// issue names beside OpenBLAS and our own kernels (bench/results/cpu-kernels-2026-12-06.md).
// BLIS's headers are not in Debian's libblis-dev, so the three entry points are declared here.
//
//   apt-get install libblis4-openmp
//   g++ -O2 -fopenmp bench/probes/blis_sgemm.cpp \
//       /usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4 -o /tmp/blis_sgemm
//   BLIS_NUM_THREADS=2 OMP_NUM_THREADS=2 /tmp/blis_sgemm
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

extern "C" {
enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
int bli_arch_query_id(void);
const char* bli_arch_string(int id);
const char* bli_info_get_version_str(void);
}

struct Shape {
  const char* name;
  int m, n, k;
  bool trans_a, trans_b;
};

int main() {
  std::printf("BLIS %s, kernels: %s\n", bli_info_get_version_str(),
              bli_arch_string(bli_arch_query_id()));
  const Shape shapes[] = {{"dense_forward_128x128x1600_NT", 128, 128, 1600, false, true},
                          {"dense_backward_data_128x1600x128_NN", 128, 1600, 128, false, false},
                          {"dense_backward_filter_128x1600x128_TN", 128, 1600, 128, true, false},
                          {"conv2_im2col_chunk_64x968x288_NN", 64, 968, 288, false, false},
                          {"square_512_NN", 512, 512, 512, false, false}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const Shape& s : shapes) {
    std::vector<float> a(size_t(s.m) * s.k), b(size_t(s.k) * s.n), c(size_t(s.m) * s.n);
    for (float& v : a) v = u(rng);
    for (float& v : b) v = u(rng);
    const int lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
    const auto run = [&] {
      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                  s.trans_b ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f, a.data(), lda,
                  b.data(), ldb, 0.0f, c.data(), s.n);
    };
    for (int i = 0; i < 5; ++i) run();  // warm-up: threads, packing buffers
    // Best of 5 batches of calls, each batch about 0.2 s.
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      int calls = 0;
      const auto start = std::chrono::steady_clock::now();
      double seconds = 0;
      do {
        run();
        ++calls;
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      } while (seconds < 0.2);
      best = std::min(best, seconds / calls);
    }
    const double flop = 2.0 * s.m * s.n * s.k;
    std::printf("%-40s %8.0f us  %6.1f GFLOP/s\n", s.name, best * 1e6, flop / best / 1e9);
  }
  return 0;
}
