#include "image/manifest.h"

#include "image/errors.h"
#include "image/json_util.h"
#include "image/media_types.h"
#include "plfm/core/json.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

using json::Json;

Error badDoc(std::string_view what) {
  return Error(errc::kBadManifest, "malformed manifest: " + std::string(what));
}

Result<std::string> docString(const Json& obj, std::string_view field, std::string_view path) {
  return optStringField(obj, field, path, badDoc);
}

Result<Descriptor> parseDescriptor(const Json& j, const std::string& path) {
  if (!j.is_object()) return badDoc(path + " must be an object");
  Descriptor d;
  PLFM_ASSIGN_OR_RETURN(d.media_type, docString(j, "mediaType", path));
  const json::Json* digest = findField(j, "digest");
  if (digest == nullptr || !digest->is_string()) {
    return badDoc(path + ".digest must be a string");
  }
  auto parsed = Digest::parse(digest->get_ref<const std::string&>());
  if (!parsed) return badDoc(path + ".digest: " + parsed.error().message());
  d.digest = *parsed;
  const json::Json* size = findField(j, "size");
  if (size == nullptr || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return badDoc(path + ".size must be a non-negative integer");
  }
  d.size = size->get<int64_t>();
  if (const json::Json* p = findField(j, "platform"); p != nullptr && !p->is_null()) {
    if (!p->is_object()) return badDoc(path + ".platform must be an object");
    Platform plat;
    const std::string pp = path + ".platform";
    PLFM_ASSIGN_OR_RETURN(plat.os, docString(*p, "os", pp));
    PLFM_ASSIGN_OR_RETURN(plat.architecture, docString(*p, "architecture", pp));
    PLFM_ASSIGN_OR_RETURN(plat.variant, docString(*p, "variant", pp));
    d.platform = std::move(plat);
  }
  if (const json::Json* a = findField(j, "annotations"); a != nullptr && a->is_object()) {
    PLFM_ASSIGN_OR_RETURN(d.ref_name,
                          docString(*a, media::kRefNameAnnotation, path + ".annotations"));
  }
  return d;
}

Result<std::vector<Descriptor>> parseDescriptors(const Json& j, std::string_view field,
                                                 size_t max) {
  const json::Json* it = findField(j, field);
  if (it == nullptr || !it->is_array()) {
    return badDoc(std::string(field) + " must be an array");
  }
  if (it->size() > max) {
    return badDoc(std::string(field) + " has " + std::to_string(it->size()) +
                  " entries; the limit is " + std::to_string(max));
  }
  std::vector<Descriptor> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(
        auto d, parseDescriptor((*it)[i], std::string(field) + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(d));
  }
  return out;
}

bool isIndexType(std::string_view t) {
  return t == media::kOciIndex || t == media::kDockerManifestList;
}
bool isManifestType(std::string_view t) {
  return t == media::kOciManifest || t == media::kDockerManifest;
}

// "application/json; charset=utf-8" -> "application/json".
std::string_view stripParams(std::string_view content_type) {
  return trim(content_type.substr(0, content_type.find(';')));
}

}  // namespace

Result<ManifestDocument> parseManifestDocument(std::string_view bytes,
                                               std::string_view content_type) {
  if (bytes.size() > kMaxManifestBytes) {
    return badDoc("document is " + std::to_string(bytes.size()) + " bytes; the limit is " +
                  std::to_string(kMaxManifestBytes));
  }
  auto parsed = json::parse(bytes);
  if (!parsed) return badDoc(parsed.error().message());
  const Json& j = *parsed;
  if (!j.is_object()) return badDoc("the document must be a JSON object");
  if (const json::Json* v = findField(j, "schemaVersion"); v != nullptr) {
    if (!v->is_number_integer() || v->get<int64_t>() != 2) {
      return Error(errc::kUnsupportedManifest,
                   "unsupported manifest schemaVersion (only 2: OCI and Docker schema2; Docker "
                   "schema1 is deprecated and not supported)");
    }
  }
  PLFM_ASSIGN_OR_RETURN(std::string media_type, docString(j, "mediaType", ""));
  if (media_type.empty()) {
    const std::string_view ct = stripParams(content_type);
    if (isIndexType(ct) || isManifestType(ct)) {
      media_type = std::string(ct);
    } else if (j.contains("manifests")) {
      media_type = std::string(media::kOciIndex);
    } else if (j.contains("layers") || j.contains("config")) {
      media_type = std::string(media::kOciManifest);
    }
  }
  ManifestDocument doc;
  if (isIndexType(media_type)) {
    ImageIndex index;
    index.media_type = media_type;
    PLFM_ASSIGN_OR_RETURN(index.manifests, parseDescriptors(j, "manifests", kMaxIndexEntries));
    doc.index = std::move(index);
    return doc;
  }
  if (isManifestType(media_type)) {
    ImageManifest m;
    m.media_type = media_type;
    const json::Json* cfg = findField(j, "config");
    if (cfg == nullptr) return badDoc("config is missing");
    PLFM_ASSIGN_OR_RETURN(m.config, parseDescriptor(*cfg, "config"));
    PLFM_ASSIGN_OR_RETURN(m.layers, parseDescriptors(j, "layers", kMaxLayers));
    doc.manifest = std::move(m);
    return doc;
  }
  return Error(errc::kUnsupportedManifest,
               "unsupported manifest media type '" + media_type.substr(0, 120) + "'")
      .with("media_type", media_type.substr(0, 120));
}

Result<Descriptor> selectPlatform(const ImageIndex& index, std::string_view os,
                                  std::string_view architecture, std::string_view variant) {
  std::string offered;
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    const Platform& p = *d.platform;
    if (p.os == os && p.architecture == architecture && (variant.empty() || p.variant == variant) &&
        isManifestType(d.media_type.empty() ? media::kOciManifest : d.media_type)) {
      return d;
    }
    if (p.os == "unknown") continue;  // attestation manifests (buildkit)
    offered += (offered.empty() ? "" : ", ") + p.os + "/" + p.architecture +
               (p.variant.empty() ? "" : "/" + p.variant);
  }
  return Error(errc::kNotFound,
               "the image index has no " + std::string(os) + "/" + std::string(architecture) +
                   " manifest (it offers: " + (offered.empty() ? "none" : offered) + ")")
      .with("platform", std::string(os) + "/" + std::string(architecture));
}

Compression layerCompression(std::string_view media_type) {
  if (endsWith(media_type, "+gzip") || endsWith(media_type, ".tar.gzip")) {
    return Compression::kGzip;
  }
  if (endsWith(media_type, "+zstd")) return Compression::kZstd;
  if (endsWith(media_type, ".tar")) return Compression::kNone;
  return Compression::kUnknown;
}

bool isSupportedLayerType(std::string_view media_type) {
  return media_type == media::kOciLayerTar || media_type == media::kOciLayerGzip ||
         media_type == media::kOciLayerZstd || media_type == media::kOciLayerNondistGzip ||
         media_type == media::kDockerLayerGzip || media_type == media::kDockerLayerForeign ||
         media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
}

}  // namespace plfm::image
