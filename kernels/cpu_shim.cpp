// recperf CPU runner: the kernel sources compiled for the host (see cpu_shim.h), with C entry
// points that run one launch, every block and every thread, and report the first
// out-of-range index position. Built once per configuration by kernels/_cpu.py (g++ -shared)
// and loaded with ctypes.
//
// Kernels whose threads share nothing run thread after thread. `tbe` passes values between a
// warp's lanes with __shfl_sync, so it runs warp by warp: the 32 lanes are fibers (ucontext)
// that run one at a time until each has finished or reached a shuffle; when every lane that
// has not finished waits at one, the shuffles are resolved together (each lane reads lane
// srcLane's deposited value) and the lanes go on. That is the warp's lock-step semantics for
// converged shuffles, exact for any interleaving of the lanes' other (independent) work. A
// shuffle whose mask names a lane that has exited, or lanes waiting with different masks, is
// reported as a failed assert; a lane that fails an index check stops its whole warp (on a GPU
// the assert stops the kernel) after the first bad position is recorded.
#include <ucontext.h>

#include <vector>

#include "cpu_shim.h"
#include "embedding_bag_aux.cu"
#include "embedding_bag_micro24.cu"
#include "embedding_bag_pytorch.cu"
#include "embedding_bag_tbe.cu"
#include "embedding_bag_warp.cu"

namespace {

struct recperf_lane {
  ucontext_t ctx;
  std::vector<char> stack;
  dim3 tid;
  bool done = false, waiting = false;
  unsigned int mask = 0;
  int src = 0, width = 32;
  unsigned long long value = 0, result = 0;
};

struct recperf_warp_run {
  ucontext_t scheduler;
  recperf_lane lanes[32];
  int current = 0;
  bool abort = false;
  void* body = nullptr;
  void (*call)(void*) = nullptr;
  long long* first_bad = nullptr;
  const char** failed_condition = nullptr;
  int status = 0;
};

recperf_warp_run* recperf_active_warp = nullptr;

void recperf_lane_entry() {
  recperf_warp_run* w = recperf_active_warp;
  try {
    w->call(w->body);
  } catch (const recperf_index_fault& f) {
    if (*w->first_bad < 0 || f.position < *w->first_bad) *w->first_bad = f.position;
    w->abort = true;
  } catch (const recperf_assert_fault& f) {
    *w->failed_condition = f.condition;
    w->status = 1;
    w->abort = true;
  }
  w->lanes[w->current].done = true;
  swapcontext(&w->lanes[w->current].ctx, &w->scheduler);
}

}  // namespace

unsigned long long recperf_cpu_shfl(unsigned int mask, unsigned long long bits, int src_lane, int width) {
  recperf_warp_run* w = recperf_active_warp;
  if (w == nullptr) throw recperf_assert_fault{"__shfl_sync outside a lock-step warp run"};
  recperf_lane& me = w->lanes[w->current];
  me.waiting = true;
  me.mask = mask;
  me.value = bits;
  me.src = src_lane;
  me.width = width;
  swapcontext(&me.ctx, &w->scheduler);
  if (w->abort) throw recperf_assert_fault{"warp stopped"};
  return me.result;
}

namespace {

template <typename Body>
void recperf_call_body(void* p) {
  (*static_cast<Body*>(p))();
}

// Run body() for every thread of a (grid.x) x (block.x, block.y) launch, warp by warp with the
// lanes in lock-step at shuffles (see the file comment).
template <typename Body>
int recperf_cpu_launch_warps(unsigned grid_x, unsigned block_x, unsigned block_y, long long* first_bad,
                             const char** failed_condition, Body body) {
  gridDim = dim3{grid_x, 1, 1};
  blockDim = dim3{block_x, block_y, 1};
  const unsigned threads = block_x * block_y;
  if (threads % 32) throw recperf_assert_fault{"lock-step warps need whole warps"};
  static recperf_warp_run run;  // one warp at a time
  constexpr size_t kStack = 256 * 1024;
  for (auto& lane : run.lanes) lane.stack.resize(kStack);
  run.first_bad = first_bad;
  run.failed_condition = failed_condition;
  run.status = 0;
  run.body = &body;
  run.call = &recperf_call_body<Body>;
  recperf_active_warp = &run;
  for (unsigned bx = 0; bx < grid_x; ++bx) {
    for (unsigned warp = 0; warp < threads / 32; ++warp) {
      run.abort = false;
      for (int l = 0; l < 32; ++l) {
        recperf_lane& lane = run.lanes[l];
        const unsigned linear = warp * 32 + l;
        lane.tid = dim3{linear % block_x, linear / block_x, 0};
        lane.done = lane.waiting = false;
        getcontext(&lane.ctx);
        lane.ctx.uc_stack.ss_sp = lane.stack.data();
        lane.ctx.uc_stack.ss_size = lane.stack.size();
        lane.ctx.uc_link = nullptr;
        makecontext(&lane.ctx, recperf_lane_entry, 0);
      }
      while (!run.abort) {
        for (int l = 0; l < 32 && !run.abort; ++l) {
          recperf_lane& lane = run.lanes[l];
          if (lane.done || lane.waiting) continue;
          run.current = l;
          blockIdx = dim3{bx, 0, 0};
          threadIdx = lane.tid;
          swapcontext(&run.scheduler, &lane.ctx);
        }
        if (run.abort) break;
        bool any_waiting = false;
        for (auto& lane : run.lanes) any_waiting = any_waiting || lane.waiting;
        if (!any_waiting) break;  // every lane finished
        // every lane that has not finished waits at a shuffle: resolve them together
        for (int l = 0; l < 32; ++l) {
          recperf_lane& lane = run.lanes[l];
          if (lane.done) continue;
          for (int m = 0; m < 32; ++m) {
            if (!(lane.mask >> m & 1u)) continue;
            if (!run.lanes[m].waiting || run.lanes[m].mask != lane.mask) {
              *failed_condition = "__shfl_sync: a lane of the mask exited or waits at another shuffle";
              run.status = 1;
              run.abort = true;
            }
          }
        }
        if (run.abort) break;
        for (int l = 0; l < 32; ++l) {
          recperf_lane& lane = run.lanes[l];
          if (lane.done) continue;
          const int w = lane.width > 0 && lane.width <= 32 ? lane.width : 32;
          const int src = (l & ~(w - 1)) + (lane.src & (w - 1));
          lane.result = run.lanes[src].value;
        }
        for (auto& lane : run.lanes) lane.waiting = false;
      }
    }
  }
  recperf_active_warp = nullptr;
  return run.status;
}

// Run body() for every thread of a (grid.x) x (block.x, block.y) launch. A thread that fails an
// index check stops there (before its read); the smallest failing position is recorded. Returns
// 0, or 1 after a failed non-index assert (its condition in *failed_condition).
template <typename Body>
int recperf_cpu_launch(unsigned grid_x, unsigned block_x, unsigned block_y, long long* first_bad,
                       const char** failed_condition, Body body) {
  gridDim = dim3{grid_x, 1, 1};
  blockDim = dim3{block_x, block_y, 1};
  int status = 0;
  for (unsigned bx = 0; bx < grid_x; ++bx) {
    blockIdx = dim3{bx, 0, 0};
    for (unsigned ty = 0; ty < block_y; ++ty) {
      for (unsigned tx = 0; tx < block_x; ++tx) {
        threadIdx = dim3{tx, ty, 0};
        try {
          body();
        } catch (const recperf_index_fault& f) {
          if (*first_bad < 0 || f.position < *first_bad) *first_bad = f.position;
        } catch (const recperf_assert_fault& f) {
          *failed_condition = f.condition;
          status = 1;
        }
      }
    }
  }
  return status;
}

}  // namespace

extern "C" {

// The variants with PyTorch's kernel signature (pytorch, pytorch-current, micro24-combined).
#define RECPERF_CPU_PYTORCH_LIKE(NAME, KERNEL)                                                                   \
  int NAME(unsigned grid_x, unsigned block_x, unsigned block_y, const index_t* input, const index_t* offsets,    \
           const scalar_t* weight, scalar_t* output, index_t* offset2bag, long long numIndices, long long numBags, \
           long long featureSize, long long weight_stride0, long long weight_stride1, int mode, index_t* bag_size, \
           const scalar_t* per_sample_weights, long long per_sample_weights_stride, long long padding_idx,        \
           long long numRows, int l2_prefetch_distance, long long* first_bad, const char** failed_condition) {     \
    return recperf_cpu_launch(grid_x, block_x, block_y, first_bad, failed_condition, [&]() {                     \
      KERNEL(input, offsets, weight, output, offset2bag, numIndices, numBags, featureSize, weight_stride0,       \
             weight_stride1, mode, bag_size, per_sample_weights, per_sample_weights_stride, (index_t)padding_idx, \
             numRows, l2_prefetch_distance);                                                                     \
    });                                                                                                          \
  }
RECPERF_CPU_PYTORCH_LIKE(recperf_cpu_pytorch, recperf_embedding_bag_pytorch)
RECPERF_CPU_PYTORCH_LIKE(recperf_cpu_micro24, recperf_embedding_bag_micro24)

int recperf_cpu_warp(unsigned grid_x, unsigned block_x, const index_t* input, const index_t* offsets,
                     const scalar_t* weight, scalar_t* output, long long numIndices, long long numBags,
                     long long featureSize, int mode, const scalar_t* per_sample_weights, long long numRows,
                     int l2_prefetch_distance, long long* first_bad, const char** failed_condition) {
  return recperf_cpu_launch(grid_x, block_x, 1, first_bad, failed_condition, [&]() {
    recperf_embedding_bag_warp(input, offsets, weight, output, numIndices, numBags, featureSize, mode,
                               per_sample_weights, numRows, l2_prefetch_distance);
  });
}

int recperf_cpu_tbe(unsigned grid_x, unsigned block_x, unsigned block_y, const index_t* indices,
                    const index_t* offsets, const scalar_t* weights, scalar_t* output, long long numIndices,
                    long long B, long long D, int mode, const scalar_t* indice_weights, long long numRows,
                    long long* first_bad, const char** failed_condition) {
  try {
    return recperf_cpu_launch_warps(grid_x, block_x, block_y, first_bad, failed_condition, [&]() {
      recperf_embedding_bag_tbe(indices, offsets, weights, output, numIndices, B, D, mode, indice_weights, numRows);
    });
  } catch (const recperf_assert_fault& f) {
    *failed_condition = f.condition;
    return 1;
  }
}

int recperf_cpu_micro24_pin(unsigned grid_x, unsigned block_x, unsigned block_y, const scalar_t* weight,
                            long long featureSize, long long weight_stride0, const index_t* hot, long long numHot) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, block_y, &unused, &cond, [&]() {
    recperf_micro24_pin_L2(weight, featureSize, weight_stride0, hot, numHot);
  });
}

int recperf_cpu_check_indices(unsigned grid_x, unsigned block_x, const index_t* input, long long numIndices,
                              long long numRows, unsigned long long* first_bad) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_check_indices(input, numIndices, numRows, first_bad);
  });
}

int recperf_cpu_remap_indices(unsigned grid_x, unsigned block_x, const index_t* input, index_t* out,
                              long long numIndices, const index_t* row_map, long long numRows) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_remap_indices(input, out, numIndices, row_map, numRows);
  });
}

int recperf_cpu_pin_rows(unsigned grid_x, unsigned block_x, const char* weight, const index_t* hot_rows,
                         long long numHot, long long rowBytes) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_pin_rows_evict_last(weight, hot_rows, numHot, rowBytes);
  });
}

}  // extern "C"
