/** Chooses the key provider and e-mail sender from settings: Key Vault and ACS in Azure, local stand-ins locally. */
import { LOCAL_ONLY_BLOB_CONTAINERS } from "./config/resources";
import { AcsEmailSender } from "./email/acs-email-sender";
import { OutboxEmailSender } from "./email/outbox-email-sender";
import { KeyVaultKeyProvider } from "./keys/keyvault-key-provider";
import { LocalKeyProvider } from "./keys/local-key-provider";
import type { AdapterFactory } from "./services";

export const adaptersFromSettings: AdapterFactory = (settings, blobs) => ({
  keys: settings.keys.provider === "keyvault" ? KeyVaultKeyProvider.fromSettings(settings.keys) : new LocalKeyProvider(settings.keys.masterKey),
  email:
    settings.email.provider === "acs"
      ? AcsEmailSender.fromSettings(settings.email)
      : new OutboxEmailSender(blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name), settings.email.sender),
});
