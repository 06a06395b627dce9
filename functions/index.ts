/**
 * The app's entry point (package.json "main"): the one place every function is registered. Each capability's
 * file calls app.http / app.timer / app.storageQueue; the Functions host, or the local runtime in dev/, serves
 * exactly those registrations.
 */
import { app } from "@azure/functions";
import { adaptersFromSettings } from "../shared/adapters";
import { parseSettings } from "../shared/config/settings";
import { configureServices, createServices } from "../shared/services";
import "./health";
import "./openapi";
import "./admin-tenants";
import "./audit";
import "./uploads";
import "./notifications";
import "./keys";
import "./retention";
import "./webhooks";
import "./deadlines";
import "./breaches";
import "./consents";
import "./subject-requests";
import "./subject-request-packages";
import "./privacy-information";
import "./subject-request-outcomes";
import "./not-found";
import { registerClockControl } from "./admin-clock";

// Streamed request and response bodies: uploads of gigabytes never sit in memory.
app.setup({ enableHttpStream: true });

// Settings are checked at start-up: a missing or invalid one stops the app with one line naming it.
const settings = parseSettings(process.env);
configureServices(() => createServices(settings, adaptersFromSettings));

// Local trials only (settings refuse it with real keys or e-mail): the movable clock's admin routes.
if (settings.localClockControl) registerClockControl();
