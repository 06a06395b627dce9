/** The crypto building blocks: streaming payload encryption, data-key wrapping, field encryption, lookup hashes. */
export { IntegrityError, inIntegrityContext, type IntegrityContext, type IntegrityFailure } from "./errors";
export {
  consentEvidenceAssociatedData,
  encodeAssociatedData,
  fieldAssociatedData,
  uploadAssociatedData,
  wrappedKeyAssociatedData,
} from "./associated-data";
export {
  DATA_KEY_SIZE,
  DEFAULT_SEGMENT_SIZE,
  HEADER_SIZE,
  MAX_ASSOCIATED_DATA_SIZE,
  MAX_SEGMENT_SIZE,
  MAX_SEGMENTS,
  MIN_SEGMENT_SIZE,
  NONCE_PREFIX_SIZE,
  SALT_SIZE,
  STREAM_MAGIC,
  STREAM_VERSION,
  TAG_SIZE,
  ciphertextSize,
  createDecryptStream,
  createEncryptStream,
  createRangeDecryptStream,
  generateDataKey,
  parseHeader,
  planRange,
  plaintextSize,
  segmentCount,
  type DecryptOptions,
  type EncryptOptions,
  type RangeDecryptParams,
  type RangePlan,
  type StreamHeader,
} from "./stream-aead";
export { KEK_SIZE, WRAPPED_KEY_SIZE, WRAPPED_KEY_VERSION, unwrapDataKey, wrapDataKey } from "./key-wrap";
export {
  FIELD_KEY_SIZE,
  LOOKUP_SECRET_SIZE,
  decryptField,
  encryptField,
  lookupHash,
  normaliseEmail,
} from "./field-crypto";
