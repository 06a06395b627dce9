import { z } from "zod";

/**
 * Every setting the code reads, parsed once at start-up. Locally they come from local.settings.json
 * (the local runtime loads its "Values"); in Azure they are the function app's app settings, written by
 * infra/app/function-app.bicep. tests/infra checks that the two lists agree.
 *
 * Connections follow the Functions convention: a connection string under the plain name locally, or
 * identity-based settings `<Name>__accountEndpoint` / `__blobServiceUri` / `__queueServiceUri` in Azure,
 * optionally with `<Name>__clientId` naming the user-assigned managed identity.
 */

const GiB = 1024 * 1024 * 1024;

const httpsUrl = z.url({ protocol: /^https?$/ });

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const base64Key = z
  .string()
  .refine((s) => /^[A-Za-z0-9+/]{43}=$/.test(s), "must be 32 bytes, base64-encoded (44 characters)");

/** Raw setting names, so the infra drift test and the error messages use the same strings as the code. */
export const SETTING = {
  cosmosConnectionString: "CosmosDb",
  cosmosEndpoint: "CosmosDb__accountEndpoint",
  cosmosClientId: "CosmosDb__clientId",
  cosmosDatabase: "COSMOS_DATABASE_NAME",
  storageConnectionString: "SafeDataStorage",
  storageBlobUri: "SafeDataStorage__blobServiceUri",
  storageQueueUri: "SafeDataStorage__queueServiceUri",
  storageClientId: "SafeDataStorage__clientId",
  keyProvider: "KEY_PROVIDER",
  keyVaultUri: "KEY_VAULT_URI",
  localMasterKey: "LOCAL_MASTER_KEY",
  emailProvider: "EMAIL_PROVIDER",
  acsEndpoint: "ACS_ENDPOINT",
  emailSender: "EMAIL_SENDER_ADDRESS",
  adminApiKey: "ADMIN_API_KEY",
  appClientId: "AZURE_CLIENT_ID",
  maxUploadBytes: "MAX_UPLOAD_BYTES",
  uploadIdleSeconds: "UPLOAD_IDLE_SECONDS",
  purgeGraceMinutes: "PURGE_GRACE_MINUTES",
  evidenceRetentionYears: "EVIDENCE_RETENTION_YEARS",
  suspendedTenantNoticeDays: "SUSPENDED_TENANT_NOTICE_DAYS",
  consentLinkDays: "CONSENT_LINK_DAYS",
  consentEvidenceYears: "CONSENT_EVIDENCE_YEARS",
  consentEvidenceMaxBytes: "CONSENT_EVIDENCE_MAX_BYTES",
  dsrCodeTtlMinutes: "DSR_CODE_TTL_MINUTES",
  dsrVerifyDays: "DSR_VERIFY_DAYS",
  dsrExportDays: "DSR_EXPORT_DAYS",
  breachControllerNoticeHours: "BREACH_CONTROLLER_NOTICE_HOURS",
  breachNoticeMaxHours: "BREACH_NOTICE_MAX_HOURS",
  operatorContactEmail: "OPERATOR_CONTACT_EMAIL",
  emailSendsPerMinute: "EMAIL_SENDS_PER_MINUTE",
  emailSendsPerHour: "EMAIL_SENDS_PER_HOUR",
  allowLoopbackWebhooks: "ALLOW_LOOPBACK_WEBHOOKS",
  localClockControl: "LOCAL_CLOCK_CONTROL",
  appInsightsConnectionString: "APPLICATIONINSIGHTS_CONNECTION_STRING",
  appInsightsAuthentication: "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
} as const;

export const rawSettingsSchema = z.object({
  [SETTING.cosmosConnectionString]: z.string().min(1).optional(),
  [SETTING.cosmosEndpoint]: httpsUrl.optional(),
  [SETTING.cosmosClientId]: z.uuid().optional(),
  [SETTING.cosmosDatabase]: z.string().regex(/^[A-Za-z0-9-_]{1,255}$/).default("safedata"),
  [SETTING.storageConnectionString]: z.string().min(1).optional(),
  [SETTING.storageBlobUri]: httpsUrl.optional(),
  [SETTING.storageQueueUri]: httpsUrl.optional(),
  [SETTING.storageClientId]: z.uuid().optional(),
  [SETTING.keyProvider]: z.enum(["keyvault", "local"]).default("keyvault"),
  [SETTING.keyVaultUri]: httpsUrl.optional(),
  [SETTING.localMasterKey]: base64Key.optional(),
  [SETTING.emailProvider]: z.enum(["acs", "outbox"]).default("acs"),
  [SETTING.acsEndpoint]: httpsUrl.optional(),
  [SETTING.emailSender]: z.email().optional(),
  [SETTING.adminApiKey]: z.string().min(32, "must be at least 32 characters"),
  [SETTING.appClientId]: z.uuid().optional(),
  [SETTING.maxUploadBytes]: positiveInt(2 * GiB),
  [SETTING.uploadIdleSeconds]: positiveInt(60),
  [SETTING.purgeGraceMinutes]: positiveInt(60),
  [SETTING.evidenceRetentionYears]: positiveInt(5),
  [SETTING.suspendedTenantNoticeDays]: positiveInt(30),
  [SETTING.consentLinkDays]: z.coerce.number().int().min(1).max(3650).default(365),
  [SETTING.consentEvidenceYears]: z.coerce.number().int().min(1).max(30).default(3),
  [SETTING.consentEvidenceMaxBytes]: z.coerce.number().int().min(1024).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
  [SETTING.dsrCodeTtlMinutes]: positiveInt(60),
  [SETTING.dsrVerifyDays]: positiveInt(14),
  [SETTING.dsrExportDays]: positiveInt(7),
  [SETTING.breachControllerNoticeHours]: positiveInt(24),
  [SETTING.breachNoticeMaxHours]: positiveInt(72),
  [SETTING.operatorContactEmail]: z.email().max(254).optional(),
  [SETTING.emailSendsPerMinute]: positiveInt(30),
  [SETTING.emailSendsPerHour]: positiveInt(100),
  [SETTING.allowLoopbackWebhooks]: z.enum(["true", "false"]).default("false"),
  [SETTING.localClockControl]: z.enum(["true", "false"]).default("false"),
  [SETTING.appInsightsConnectionString]: z.string().min(1).optional(),
  [SETTING.appInsightsAuthentication]: z.string().min(1).optional(),
});

export type ConnectionConfig =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; endpoint: string; clientId?: string };

export interface StorageConnection {
  kind: "connectionString" | "identity";
  connectionString?: string;
  blobServiceUri?: string;
  queueServiceUri?: string;
  clientId?: string;
}

export interface Settings {
  cosmos: ConnectionConfig & { database: string };
  storage: StorageConnection;
  keys:
    | { provider: "keyvault"; vaultUri: string; clientId?: string }
    | { provider: "local"; masterKey: Buffer };
  email:
    | { provider: "acs"; endpoint: string; sender: string; clientId?: string }
    | { provider: "outbox"; sender: string };
  adminApiKey: string;
  maxUploadBytes: number;
  /** An upload body that sends nothing for this long is ended with 408 and can be sent again. */
  uploadIdleSeconds: number;
  purgeGraceMinutes: number;
  evidenceRetentionYears: number;
  suspendedTenantNoticeDays: number;
  /** How long a consent withdrawal link works after it is issued (and a rotated link secret keeps verifying). */
  consentLinkDays: number;
  /** How long consent evidence is kept after the consent ended (EDPB 05/2020 para. 107; the Danish limitation period is 3 years). */
  consentEvidenceYears: number;
  /** The largest consent evidence file (a screenshot, PDF or rendered notice) accepted, in bytes (default 10 MiB). */
  consentEvidenceMaxBytes: number;
  /** A data subject's one-time verification code is valid this long (minutes). */
  dsrCodeTtlMinutes: number;
  /** An unverified data-subject request closes as closed-unverified after this many days. */
  dsrVerifyDays: number;
  /** An access or portability package can be downloaded for this many days, then it is purged. */
  dsrExportDays: number;
  /** The processor's own target for telling a controller of a breach, in hours after awareness (the agreement's limit is 72). */
  breachControllerNoticeHours: number;
  /** Notices to persons must be out within this many hours ("without undue delay"); a later estimate raises an alert. */
  breachNoticeMaxHours: number;
  /** The operator's contact for breach and deadline alerts (optional; without it only tenants are told). */
  operatorContactEmail?: string;
  /** The e-mail service's send limits (ACS starts new resources low); fan-outs stay under both. */
  emailSendsPerMinute: number;
  emailSendsPerHour: number;
  /**
   * Local only: webhook endpoints may be http:// URLs on the loopback interface (a test receiver). Refused unless
   * keys and e-mail are local; never set by the Bicep.
   */
  allowLoopbackWebhooks: boolean;
  /** Local only: the admin API can move the service's clock forward (GET/POST /api/v1/admin/clock). Same guard. */
  localClockControl: boolean;
  telemetry?: { connectionString: string; authentication?: string; clientId?: string };
}

export class SettingsError extends Error {
  constructor(
    readonly setting: string,
    readonly problem: string,
  ) {
    super(`Invalid setting ${setting}: ${problem}`);
    this.name = "SettingsError";
  }
}

function need<T>(value: T | undefined, setting: string, why: string): T {
  if (value === undefined) throw new SettingsError(setting, `is required ${why}`);
  return value;
}

/**
 * Parses the environment. Throws SettingsError naming the first bad or missing setting in one line,
 * which is what start-up prints before it stops.
 */
export function parseSettings(env: Record<string, string | undefined>): Settings {
  // Empty strings count as unset: app settings and .env files often carry "".
  const cleaned: Record<string, string> = {};
  for (const name of Object.values(SETTING)) {
    const v = env[name];
    if (v !== undefined && v.trim() !== "") cleaned[name] = v.trim();
    // When the platform cannot resolve a Key Vault reference it passes the reference text itself.
    if (v !== undefined && /^@Microsoft\.KeyVault\(/i.test(v.trim())) {
      throw new SettingsError(name, "is a Key Vault reference the platform could not resolve; check the app identity's access to the vault");
    }
  }
  const parsed = rawSettingsSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const setting = String(issue?.path[0] ?? "settings");
    const problem =
      issue?.code === "invalid_type" && cleaned[setting] === undefined ? "is required but not set" : (issue?.message ?? "is invalid");
    throw new SettingsError(setting, problem);
  }
  const s = parsed.data;

  let cosmos: Settings["cosmos"];
  const cosmosCs = s[SETTING.cosmosConnectionString];
  if (cosmosCs) {
    const cs = cosmosCs;
    if (!/AccountEndpoint=[^;]+/i.test(cs)) {
      throw new SettingsError(SETTING.cosmosConnectionString, "must be a connection string with AccountEndpoint=...;AccountKey=...");
    }
    cosmos = { kind: "connectionString", connectionString: cs, database: s[SETTING.cosmosDatabase] };
  } else {
    const endpoint = need(s[SETTING.cosmosEndpoint], SETTING.cosmosEndpoint, `(or ${SETTING.cosmosConnectionString} locally)`);
    cosmos = { kind: "identity", endpoint, clientId: s[SETTING.cosmosClientId], database: s[SETTING.cosmosDatabase] };
  }

  let storage: StorageConnection;
  const storageCs = s[SETTING.storageConnectionString];
  if (storageCs) {
    storage = { kind: "connectionString", connectionString: storageCs };
  } else {
    storage = {
      kind: "identity",
      blobServiceUri: need(s[SETTING.storageBlobUri], SETTING.storageBlobUri, `(or ${SETTING.storageConnectionString} locally)`),
      queueServiceUri: need(s[SETTING.storageQueueUri], SETTING.storageQueueUri, `(or ${SETTING.storageConnectionString} locally)`),
      clientId: s[SETTING.storageClientId],
    };
  }

  const keys: Settings["keys"] =
    s[SETTING.keyProvider] === "keyvault"
      ? {
          provider: "keyvault",
          vaultUri: need(s[SETTING.keyVaultUri], SETTING.keyVaultUri, `when ${SETTING.keyProvider}=keyvault`),
          clientId: s[SETTING.appClientId],
        }
      : {
          provider: "local",
          masterKey: Buffer.from(need(s[SETTING.localMasterKey], SETTING.localMasterKey, `when ${SETTING.keyProvider}=local`), "base64"),
        };

  const email: Settings["email"] =
    s[SETTING.emailProvider] === "acs"
      ? {
          provider: "acs",
          endpoint: need(s[SETTING.acsEndpoint], SETTING.acsEndpoint, `when ${SETTING.emailProvider}=acs`),
          sender: need(s[SETTING.emailSender], SETTING.emailSender, `when ${SETTING.emailProvider}=acs`),
          clientId: s[SETTING.appClientId],
        }
      : { provider: "outbox", sender: s[SETTING.emailSender] ?? "DoNotReply@safedata.local" };

  // Settings that weaken the service for local trials are refused anywhere keys or e-mail are real.
  const allowLoopbackWebhooks = s[SETTING.allowLoopbackWebhooks] === "true";
  const localClockControl = s[SETTING.localClockControl] === "true";
  for (const [setting, on] of [
    [SETTING.allowLoopbackWebhooks, allowLoopbackWebhooks],
    [SETTING.localClockControl, localClockControl],
  ] as const) {
    if (on && (keys.provider !== "local" || email.provider !== "outbox")) {
      throw new SettingsError(setting, `may be true only locally, with ${SETTING.keyProvider}=local and ${SETTING.emailProvider}=outbox`);
    }
  }

  const appInsights = s[SETTING.appInsightsConnectionString];
  return {
    cosmos,
    storage,
    keys,
    email,
    adminApiKey: s[SETTING.adminApiKey],
    maxUploadBytes: s[SETTING.maxUploadBytes],
    uploadIdleSeconds: s[SETTING.uploadIdleSeconds],
    purgeGraceMinutes: s[SETTING.purgeGraceMinutes],
    evidenceRetentionYears: s[SETTING.evidenceRetentionYears],
    suspendedTenantNoticeDays: s[SETTING.suspendedTenantNoticeDays],
    consentLinkDays: s[SETTING.consentLinkDays],
    consentEvidenceYears: s[SETTING.consentEvidenceYears],
    consentEvidenceMaxBytes: s[SETTING.consentEvidenceMaxBytes],
    dsrCodeTtlMinutes: s[SETTING.dsrCodeTtlMinutes],
    dsrVerifyDays: s[SETTING.dsrVerifyDays],
    dsrExportDays: s[SETTING.dsrExportDays],
    breachControllerNoticeHours: s[SETTING.breachControllerNoticeHours],
    breachNoticeMaxHours: s[SETTING.breachNoticeMaxHours],
    operatorContactEmail: s[SETTING.operatorContactEmail],
    emailSendsPerMinute: s[SETTING.emailSendsPerMinute],
    emailSendsPerHour: s[SETTING.emailSendsPerHour],
    allowLoopbackWebhooks,
    localClockControl,
    telemetry: appInsights
      ? { connectionString: appInsights, authentication: s[SETTING.appInsightsAuthentication], clientId: s[SETTING.appClientId] }
      : undefined,
  };
}
