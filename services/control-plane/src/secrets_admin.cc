#include "secrets_admin.h"

#include <unistd.h>

#include <iostream>

#include "plfm/pg/pg.h"
#include "registry_credentials.h"
#include "schema.h"
#include "secrets_crypto.h"
#include "secrets_store.h"

namespace plfm::cp {
namespace {

int fail(const Error& e) {
  std::cerr << "plfm-control-plane secrets: " << e.message() << "\n";
  return 1;
}

}  // namespace

int secretsGenerateKey(const std::string& path) {
  auto id = crypto::generateMasterKeyFile(path);
  if (!id) return fail(id.error());
  std::cout << "master key " << *id << " written to " << path << " (mode 0600)\n";
  return 0;
}

// The rotation, step by step (each step is safe to repeat):
//  1. check the new key file;
//  2. keep the current key at <configured>.previous, then install the new
//     key at the configured path (atomic renames). Running servers notice the
//     change: they wrap new versions under the new key and still unwrap the
//     old one from .previous;
//  3. re-wrap every data key not yet under the new key, until none is left.
int secretsRotateMasterKey(const Config& cfg, const std::string& new_key_file) {
  const std::string& path = cfg.secrets_master_key_file;
  if (path.empty()) {
    return fail(Error(plfm::errc::kInvalidArgument,
                      "no secrets_master_key_file is configured; nothing to rotate"));
  }
  auto next = crypto::loadMasterKey(new_key_file);
  if (!next) return fail(next.error());
  auto current = crypto::loadMasterKey(path);
  if (!current) return fail(current.error());
  if (current->id != next->id) {
    const std::string previous = path + std::string(crypto::kPreviousSuffix);
    if (auto r = crypto::installKeyFile(path, previous); !r) return fail(r.error());
    if (auto r = crypto::installKeyFile(new_key_file, path); !r) return fail(r.error());
    std::cout << "master key " << next->id << " installed at " << path << "; the previous key "
              << current->id << " is kept at " << previous << "\n";
  }
  auto ring = crypto::Keyring::load(path);
  if (!ring) return fail(ring.error());
  auto conn = pg::Connection::connect(cfg.database);
  if (!conn) return fail(conn.error());
  if (auto m = migrateSchema(*conn); !m) return fail(m.error());
  auto changed = secretstore::rewrapAll(*conn, **ring, *next);
  if (!changed) return fail(changed.error());
  auto registries = registry::rewrapAll(*conn, **ring, *next);
  if (!registries) return fail(registries.error());
  std::cout << "re-wrapped " << *changed << " data keys under master key " << next->id
            << "; every version is now under it\n";
  std::cout << "re-wrapped " << *registries << " registry credentials under master key " << next->id
            << "\n";
  return 0;
}

}  // namespace plfm::cp
