// Mesh key rotation (docs/specs/networking/mesh.md, "Contract for key
// rotation"): the node publishes its staged and then its committed public
// key; a platform admin asks a node to rotate. Both go through the mutation
// pipeline with an Idempotency-Key; the decisions are in mesh_keys.cc.
#include "api.h"
#include "mesh_keys.h"

namespace plfm::cp {

void Api::registerMeshKeyRoutes(http::Router& r) {
  route(r, "POST", "/v1/nodes/{node_id}/mesh-key", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto body,
                                parseBody(ctx.req, {"phase", "public_key", "listen_port"}));
          PLFM_ASSIGN_OR_RETURN(auto cmd, parseMeshKeyCommand(body));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto state, lockMeshKey(tx, node.str()));
            if (!cmd.commit) PLFM_TRY(refuseAnotherNodesKey(tx, node.str(), cmd.public_key));
            PLFM_ASSIGN_OR_RETURN(auto ev, decideMeshKey(state, cmd));
            Mutation m;
            m.status = 200;
            m.body = meshKeyJson(state);
            if (!ev) return m;
            m.events.push_back(std::move(*ev));
            // A commit: the new key dates from its event (mesh_key_since).
            if (cmd.commit) {
              m.stamp = [](json::Json& answer, const AppendResult& appended) {
                answer["key_since"] = appended.occurred_at;
              };
            }
            return m;
          });
        });

  route(r, "POST", "/v1/nodes/{node_id}/mesh-key/rotate", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_TRY(parseBody(ctx.req, {}));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto state, lockMeshKey(tx, node.str()));
            auto ev = requestRotation(state);
            Mutation m;
            m.status = 200;
            m.body = meshKeyJson(state);
            if (ev) m.events.push_back(std::move(*ev));
            return m;
          });
        });
}

}  // namespace plfm::cp
