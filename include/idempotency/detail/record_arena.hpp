// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A slab allocator for the records of one InMemoryStore shard (used under the shard's lock, so
// it takes no lock of its own). Blocks up to `max_small` bytes come from 256 KiB chunks, one
// size class per 16 bytes: no per-block header, no malloc bookkeeping, so a 112-byte record
// costs 112 bytes. A chunk whose blocks are all freed goes to a small process-wide pool,
// then back to the system (one empty chunk per class is kept to avoid churn). Larger blocks come
// from operator new.

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#define IDEMPOTENCY_ARENA_MMAP 1
#else
#define IDEMPOTENCY_ARENA_MMAP 0
#endif

namespace idempotency::detail {

class RecordArena {
 public:
  static constexpr std::size_t granule = 16;
  static constexpr std::size_t max_small = 1024;
  static constexpr std::size_t chunk_size = std::size_t{256} * 1024;

  RecordArena() = default;
  RecordArena(const RecordArena&) = delete;
  RecordArena& operator=(const RecordArena&) = delete;
  ~RecordArena() {
    // the owner frees every block first; what is left are the kept empty chunks
    for (Class& c : classes_) {
      if (c.spare != nullptr) release_chunk(c.spare);
      for (Chunk* ch = c.partial; ch != nullptr;) {
        Chunk* next = ch->next;
        release_chunk(ch);
        ch = next;
      }
    }
  }

  /// The size a block of `n` bytes really takes (what `allocate(n)` reserves).
  [[nodiscard]] static constexpr std::size_t block_size(std::size_t n) noexcept {
    return (n + granule - 1) / granule * granule;
  }

  /// A block of at least `n` bytes, aligned to 16. Throws std::bad_alloc.
  [[nodiscard]] void* allocate(std::size_t n) {
    const std::size_t size = block_size(n == 0 ? 1 : n);
    if (size > max_small) return ::operator new(size);
    Class& c = classes_[size / granule - 1];
    Chunk* ch = c.partial;
    if (ch == nullptr) {
      ch = c.spare != nullptr ? c.spare : new_chunk(size);
      c.spare = nullptr;
      link(c, ch);
    }
    void* block = nullptr;
    if (ch->free_list != nullptr) {
      block = ch->free_list;
      ch->free_list = *static_cast<void**>(block);
    } else {
      block = reinterpret_cast<std::byte*>(ch) + ch->bump;
      ch->bump += static_cast<std::uint32_t>(size);
    }
    ++ch->live;
    if (ch->free_list == nullptr && ch->bump + size > chunk_size) unlink(c, ch); // now full
    return block;
  }

  /// Frees a block that `allocate(n)` returned, with the same `n`.
  void deallocate(void* block, std::size_t n) noexcept {
    const std::size_t size = block_size(n == 0 ? 1 : n);
    if (size > max_small) {
      ::operator delete(block);
      return;
    }
    Class& c = classes_[size / granule - 1];
    Chunk* ch = chunk_of(block);
    const bool was_full = !ch->linked;
    *static_cast<void**>(block) = ch->free_list;
    ch->free_list = block;
    --ch->live;
    if (was_full) link(c, ch);
    if (ch->live == 0) {
      unlink(c, ch);
      if (c.spare == nullptr) {
        ch->free_list = nullptr;
        ch->bump = header_size;
        c.spare = ch;
      } else {
        release_chunk(ch);
      }
    }
  }

 private:
  struct alignas(64) Chunk {
    void* free_list = nullptr;
    Chunk* prev = nullptr;
    Chunk* next = nullptr;
    std::uint32_t live = 0;
    std::uint32_t bump = 0;
    bool linked = false;
  };
  static constexpr std::uint32_t header_size = sizeof(Chunk);
  static_assert(header_size % granule == 0);

  struct Class {
    Chunk* partial = nullptr; ///< chunks with a free block (a doubly linked list)
    Chunk* spare = nullptr;   ///< one empty chunk kept for reuse
  };

  static Chunk* chunk_of(void* block) noexcept {
    return reinterpret_cast<Chunk*>(reinterpret_cast<std::uintptr_t>(block) & ~(chunk_size - 1));
  }

  static void link(Class& c, Chunk* ch) noexcept {
    ch->prev = nullptr;
    ch->next = c.partial;
    if (c.partial != nullptr) c.partial->prev = ch;
    c.partial = ch;
    ch->linked = true;
  }

  static void unlink(Class& c, Chunk* ch) noexcept {
    if (ch->prev != nullptr)
      ch->prev->next = ch->next;
    else
      c.partial = ch->next;
    if (ch->next != nullptr) ch->next->prev = ch->prev;
    ch->prev = ch->next = nullptr;
    ch->linked = false;
  }

  // A chunk aligned to its own size, so a block finds its chunk by masking its address. Chunks
  // are mapped (no allocator padding stays resident) and an emptied one goes to a process-wide
  // pool of up to `pool_chunks` (16 MiB), so a store that empties and refills, or the next
  // store, reuses warm pages instead of faulting in new ones.
  static constexpr std::size_t pool_chunks = 64;

  struct ChunkPool {
    std::mutex mutex;
    std::array<void*, pool_chunks> chunks{};
    std::size_t size = 0;
  };
  // Never destroyed: a store with static storage duration may free its chunks after every
  // other static is gone. The pooled chunks stay reachable from it (no leak report).
  static ChunkPool& pool() {
    static ChunkPool* const p = new ChunkPool();
    return *p;
  }

  static Chunk* new_chunk(std::size_t) {
    void* mem = nullptr;
    {
      ChunkPool& p = pool();
      const std::lock_guard lock(p.mutex);
      if (p.size > 0) mem = p.chunks[--p.size];
    }
    if (mem == nullptr) mem = map();
    Chunk* ch = new (mem) Chunk();
    ch->bump = header_size;
    return ch;
  }

  static void release_chunk(Chunk* ch) noexcept {
    ch->~Chunk();
    {
      ChunkPool& p = pool();
      const std::lock_guard lock(p.mutex);
      if (p.size < pool_chunks) {
        p.chunks[p.size++] = ch;
        return;
      }
    }
    unmap(ch);
  }

#if IDEMPOTENCY_ARENA_MMAP
  static void* map() {
    // map twice the size and trim both ends to the alignment: no padding stays mapped
    void* raw =
        ::mmap(nullptr, 2 * chunk_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (start + chunk_size - 1) & ~(chunk_size - 1);
    if (aligned > start) ::munmap(raw, aligned - start);
    const std::uintptr_t tail = aligned + chunk_size;
    if (start + 2 * chunk_size > tail)
      ::munmap(reinterpret_cast<void*>(tail), start + 2 * chunk_size - tail);
    return reinterpret_cast<void*>(aligned);
  }
  static void unmap(void* chunk) noexcept { ::munmap(chunk, chunk_size); }
#else
  static void* map() { return ::operator new (chunk_size, std::align_val_t{chunk_size}); }
  static void unmap(void* chunk) noexcept {
    ::operator delete (chunk, std::align_val_t{chunk_size});
  }
#endif

  std::array<Class, max_small / granule> classes_{};
};

} // namespace idempotency::detail
