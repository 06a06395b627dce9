/**
 * The composition root for outside systems. Functions ask for `services()`; the first call builds every store and
 * adapter from settings (no I/O happens until one is used). Tests and the local runtime install their own with
 * `useServices()`, built the same way but with a clock they control.
 *
 * Only stores and adapters leave this file: the SDK clients they are built on stay inside, so the application core
 * can reach storage only through named store methods.
 */
import type { BlobServiceClient } from "@azure/storage-blob";
import type { Settings } from "./config/settings";
import { OffsetClock, systemClock, type Clock } from "./domain/clock";
import type { EmailSender } from "./email/email-sender";
import { bundledTemplatesDir, EmailTemplates } from "./email/templates";
import { bundledPagesDir, PageTemplates } from "./email/page-templates";
import type { KeyProvider } from "./keys/key-provider";
import { createTelemetry, type Telemetry } from "./observability";
import { BLOB_CONTAINERS, QUEUES } from "./config/resources";
import { AnchorStore } from "./stores/anchor-store";
import { AuditStore } from "./stores/audit-store";
import { ConsentStore } from "./stores/consent-store";
import { BreachStore } from "./stores/breach-store";
import { DeadlineStore } from "./stores/deadline-store";
import { EvidenceBlobs } from "./stores/evidence-blobs";
import { GeoIpCountryLookup, type IpCountryLookup } from "./stores/ip-country";
import { containersOf, createCosmosClient } from "./stores/cosmos";
import { HeartbeatStore } from "./stores/heartbeat-store";
import { IdempotencyStore } from "./stores/idempotency-store";
import { PackageBlobs } from "./stores/package-blobs";
import { PackageStore } from "./stores/package-store";
import { PayloadStore } from "./stores/payload-store";
import { createBlobServiceClient, createQueueServiceClient, QueueSender } from "./stores/storage";
import { SubjectRequestStore } from "./stores/subject-request-store";
import { SweepStore } from "./stores/sweep-store";
import { TenantStore } from "./stores/tenant-store";
import { UploadStore } from "./stores/upload-store";
import { WebhookStore } from "./stores/webhook-store";
import { HttpWebhookSender, type WebhookSender } from "./webhooks/http-sender";

/** A reachability check of one store, for health. */
export interface StoreProbe {
  readonly name: string;
  /** The outside system behind it. */
  readonly system: "cosmos" | "blob" | "queue";
  probe(): Promise<void>;
}

export interface Services {
  readonly settings: Settings;
  readonly clock: Clock;
  readonly keys: KeyProvider;
  readonly email: EmailSender;
  /** Every message to a person or tenant is rendered from these (templates/email/, checked at start). */
  readonly templates: EmailTemplates;
  /** The HTML pages shown to people and printed for tenants (templates/pages/, checked at start). */
  readonly pages: PageTemplates;
  readonly telemetry: Telemetry;
  readonly queues: QueueSender;
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  /** The audit chain heads anchored outside the database (WORM blobs in Azure). */
  readonly anchors: AnchorStore;
  readonly idempotency: IdempotencyStore;
  readonly heartbeats: HeartbeatStore;
  /** Retention sweep runs and their batches. */
  readonly sweeps: SweepStore;
  /** Deadline milestones (reminders, escalations, overdue marks) and their notices. */
  readonly deadlines: DeadlineStore;
  readonly uploads: UploadStore;
  /** Encrypted SafeData content. */
  readonly payloads: PayloadStore;
  /** Tenants' webhook endpoints and deliveries. */
  readonly webhooks: WebhookStore;
  /** The breach register (the operator's) and each affected tenant's part. */
  readonly breaches: BreachStore;
  /** Consent purposes, notices, subjects, events and withdrawal links. */
  readonly consents: ConsentStore;
  /** Consent events' evidence files (encrypted, like payloads). */
  readonly consentEvidence: EvidenceBlobs;
  /** The country of an IP address, from the offline GeoLite2 data shipped in the package (never a network look-up). */
  readonly ipCountry: IpCountryLookup;
  /** Data-subject requests: their state, deadlines, verification and work steps. */
  readonly subjectRequests: SubjectRequestStore;
  /** Access and portability packages (records) and each tenant's privacy information. */
  readonly packages: PackageStore;
  /** Access and portability packages (the encrypted zips). */
  readonly packageBlobs: PackageBlobs;
  /** Sends one signed webhook request. */
  readonly webhookSender: WebhookSender;
  /** One reachability check per store. */
  readonly probes: readonly StoreProbe[];
  /** When these services were built: health gives a new instance time for its sweeps' first runs. */
  readonly startedAt: Date;
  /** Closes the connections the stores hold (tests and the local runtime; Azure ends the process instead). */
  dispose(): void;
}

export interface ServiceOverrides {
  clock?: Clock;
  telemetry?: Telemetry;
  webhookSender?: WebhookSender;
  ipCountry?: IpCountryLookup;
}

/** Builds the key provider and the e-mail sender; see shared/adapters.ts for the settings-driven choice. */
/** Builds the key provider and e-mail sender; `clock` is the services' (what a local outbox dates its messages by). */
export type AdapterFactory = (settings: Settings, blobs: BlobServiceClient, clock: Clock) => { keys: KeyProvider; email: EmailSender };

export function createServices(settings: Settings, adapters: AdapterFactory, overrides: ServiceOverrides = {}): Services {
  // With LOCAL_CLOCK_CONTROL (local trials only) the clock is real time plus an offset the admin API moves forward.
  const clock = overrides.clock ?? (settings.localClockControl ? new OffsetClock() : systemClock);
  const cosmos = createCosmosClient(settings.cosmos);
  const containers = containersOf(cosmos.database(settings.cosmos.database));
  const blobs = createBlobServiceClient(settings.storage);
  const queues = new QueueSender(createQueueServiceClient(settings.storage));
  const { keys, email } = adapters(settings, blobs, clock);
  const tenants = new TenantStore(containers.tenants);
  const audit = new AuditStore(containers.audit, clock);
  const anchors = new AnchorStore(blobs.getContainerClient(BLOB_CONTAINERS.auditAnchors.name));
  const idempotency = new IdempotencyStore(containers.idempotency, clock);
  const heartbeats = new HeartbeatStore(containers.operations);
  const sweeps = new SweepStore(containers.operations);
  const deadlines = new DeadlineStore(containers.operations);
  const uploads = new UploadStore(containers.uploads);
  const payloads = new PayloadStore(blobs.getContainerClient(BLOB_CONTAINERS.payloads.name));
  const webhooks = new WebhookStore(containers.webhooks);
  const breaches = new BreachStore(containers.breaches);
  const consents = new ConsentStore(containers.consents);
  const consentEvidence = new EvidenceBlobs(blobs.getContainerClient(BLOB_CONTAINERS.consentEvidence.name));
  const subjectRequests = new SubjectRequestStore(containers.subjectRequests);
  const packages = new PackageStore(containers.subjectRequests);
  const packageBlobs = new PackageBlobs(blobs.getContainerClient(BLOB_CONTAINERS.payloads.name));
  const templatesDir = bundledTemplatesDir();
  const probes: StoreProbe[] = [
    { name: "tenants", system: "cosmos", probe: () => tenants.probe() },
    { name: "uploads", system: "cosmos", probe: () => uploads.probe() },
    { name: "audit", system: "cosmos", probe: () => audit.probe() },
    { name: "idempotency", system: "cosmos", probe: () => idempotency.probe() },
    { name: "operations", system: "cosmos", probe: () => heartbeats.probe() },
    { name: "webhooks", system: "cosmos", probe: () => webhooks.probe() },
    { name: "breaches", system: "cosmos", probe: () => breaches.probe() },
    { name: "consents", system: "cosmos", probe: () => consents.probe() },
    { name: "subject-requests", system: "cosmos", probe: () => subjectRequests.probe() },
    { name: "payloads", system: "blob", probe: () => payloads.probe() },
    { name: "anchors", system: "blob", probe: () => anchors.probe() },
    { name: "consent-evidence", system: "blob", probe: () => consentEvidence.probe() },
    ...Object.values(QUEUES).map((q): StoreProbe => ({ name: `queue:${q.name}`, system: "queue", probe: () => queues.probe(q.name) })),
  ];
  return {
    settings,
    clock,
    keys,
    email,
    templates: new EmailTemplates(templatesDir),
    pages: new PageTemplates(bundledPagesDir(templatesDir)),
    telemetry: overrides.telemetry ?? createTelemetry(settings.telemetry),
    queues,
    tenants,
    audit,
    anchors,
    idempotency,
    heartbeats,
    sweeps,
    deadlines,
    uploads,
    payloads,
    webhooks,
    breaches,
    consents,
    consentEvidence,
    ipCountry: overrides.ipCountry ?? new GeoIpCountryLookup(),
    subjectRequests,
    packages,
    packageBlobs,
    webhookSender: overrides.webhookSender ?? new HttpWebhookSender({ allowLoopback: settings.allowLoopbackWebhooks }),
    probes,
    startedAt: clock.now(),
    dispose: () => cosmos.dispose(),
  };
}

let current: Services | undefined;
let factory: (() => Services) | undefined;

/** Called once by the app's entry point: how to build services when first needed. */
export function configureServices(build: () => Services): void {
  factory = build;
}

/** Installs ready-made services (tests, the local runtime's seeding). */
export function useServices(services: Services): void {
  current = services;
}

export function services(): Services {
  if (!current) {
    if (!factory) throw new Error("services are not configured: the app entry point did not run");
    current = factory();
  }
  return current;
}
