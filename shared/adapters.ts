/**
 * Chooses the key provider and e-mail sender from settings: Key Vault and ACS in Azure, local stand-ins locally.
 * The Azure adapters (and their SDKs) are loaded only when chosen.
 */
import { LOCAL_ONLY_BLOB_CONTAINERS } from "./config/resources";
import { OutboxEmailSender } from "./email/outbox-email-sender";
import { LocalKeyProvider } from "./keys/local-key-provider";
import type { AdapterFactory } from "./services";

/* eslint-disable @typescript-eslint/no-require-imports */
export const adaptersFromSettings: AdapterFactory = (settings, blobs, clock) => ({
  keys:
    settings.keys.provider === "keyvault"
      ? (require("./keys/keyvault-key-provider") as typeof import("./keys/keyvault-key-provider")).KeyVaultKeyProvider.fromSettings(settings.keys)
      : new LocalKeyProvider(settings.keys.masterKey),
  email:
    settings.email.provider === "acs"
      ? (require("./email/acs-email-sender") as typeof import("./email/acs-email-sender")).AcsEmailSender.fromSettings(settings.email)
      : // Dated by the services' clock, so a stored message (and its .eml) says when it was sent in the service's time.
        new OutboxEmailSender(blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name), settings.email.sender, { clock }),
});
