// Open-addressing hash tables for the tokenizer's hot lookups: token pair -> merge, and piece
// text -> id. Linear probing over a power-of-two table at most 3/4 full; built once, then only
// read (safe to share between threads). Several times faster than std::unordered_map here, whose
// node-per-entry layout costs a cache miss per probe.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::tok {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// FNV-1a over the bytes, then mixed: short pieces (most lookups are one character) hash in a few
// cycles.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return mix64(h ^ s.size());
}

// A power of two with the table at most 3/4 full.
inline size_t table_size_for(size_t n) {
  size_t cap = 16;
  while (cap < n + n / 3 + 2) cap <<= 1;
  return cap;
}

// (left id, right id) -> (rank, merged id).
class PairMap {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    int32_t merged = -1;
  };
  static constexpr uint64_t kEmpty = ~0ULL;

  void reserve(size_t n) {
    slots_.assign(table_size_for(n), Entry{});
    mask_ = slots_.size() - 1;
  }
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  // Keeps the first value inserted for a key (the lowest rank when inserted in rank order).
  void insert(uint64_t k, uint32_t rank, int32_t merged) {
    if (table_size_for(size_ + 1) > slots_.size()) grow();
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return;
      if (slots_[i].key == kEmpty) {
        slots_[i] = {k, rank, merged};
        ++size_;
        return;
      }
    }
  }
  const Entry* find(uint64_t k) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  void grow() {
    std::vector<Entry> old = std::move(slots_);
    reserve(old.size() < 16 ? 16 : old.size());
    size_ = 0;
    for (const Entry& e : old)
      if (e.key != kEmpty) insert(e.key, e.rank, e.merged);
  }
  std::vector<Entry> slots_;
  size_t mask_ = 0, size_ = 0;
};

// uint64 key -> int32 value (the added-token trie's transitions).
class U64Map {
 public:
  static constexpr uint64_t kEmpty = ~0ULL;
  // Returns the value stored for k, storing v first when k is new.
  int32_t emplace(uint64_t k, int32_t v) {
    if (table_size_for(size_ + 1) > slots_.size()) grow();
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return slots_[i].value;
      if (slots_[i].key == kEmpty) {
        slots_[i] = {k, v};
        ++size_;
        return v;
      }
    }
  }
  // -1 when absent.
  int32_t find(uint64_t k) const {
    if (slots_.empty()) return -1;
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return slots_[i].value;
      if (slots_[i].key == kEmpty) return -1;
    }
  }

 private:
  struct Slot {
    uint64_t key = kEmpty;
    int32_t value = -1;
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() < 16 ? 16 : 2 * old.size(), Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) emplace(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// piece text -> id, over a vector of pieces owned by the caller (which must outlive the map and
// not change). The first id inserted for a text wins.
class PieceMap {
 public:
  void build(const std::vector<std::string>& pieces) {
    pieces_ = &pieces;
    slots_.assign(table_size_for(pieces.size()), Slot{});
    mask_ = slots_.size() - 1;
    for (size_t id = 0; id < pieces.size(); ++id) {
      const std::string& p = pieces[id];
      uint64_t h = hash_bytes(p);
      for (size_t i = h & mask_;; i = (i + 1) & mask_) {
        Slot& s = slots_[i];
        if (s.id < 0) {
          s = {static_cast<uint32_t>(h >> 32), static_cast<int32_t>(id)};
          break;
        }
        if (s.tag == static_cast<uint32_t>(h >> 32) && pieces[static_cast<size_t>(s.id)] == p) break;
      }
    }
  }
  // -1 when absent.
  int32_t find(std::string_view text) const {
    if (slots_.empty()) return -1;
    uint64_t h = hash_bytes(text);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && (*pieces_)[static_cast<size_t>(s.id)] == text) return s.id;
    }
  }

 private:
  struct Slot {
    uint32_t tag = 0;  // high bits of the hash: most mismatches rejected without touching the piece
    int32_t id = -1;
  };
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace loom::tok
