import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { ConfigRegistry, ConfigStore, DecisionLog, DecisionService } from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import type { AdmissionControl } from './admission/admission-control.js';
import type { Authenticator, Principal } from './auth.js';
import { registerBodyParsing } from './body-parsing.js';
import type { ControlPlane } from './control-plane.js';
import { registerErrorHandling, sendError } from './error-handler.js';
import type { FeatureControl } from './feature-control.js';
import { lazyChildLoggerFactory } from './lazy-logger.js';
import { compilesEagerly, lazySerializer, lazyValidator } from './lazy-schemas.js';
import type { ListAdmin } from './list-admin.js';
import type { NodeMetrics } from './metrics.js';
import { admin } from './plugins/admin.js';
import { dataPlane } from './plugins/data-plane.js';
import { features } from './plugins/features.js';
import { health } from './plugins/health.js';
import { lists } from './plugins/lists.js';
import { policies } from './plugins/policies.js';
import { authenticateAdmin, authenticateKey, tenantOf } from './plugins/request-auth.js';
import { type ResilienceRouteOptions, resilienceRoutes } from './plugins/resilience.js';
import { tenantConfig } from './plugins/tenant-config.js';

export interface AppDependencies {
  registry: ConfigRegistry;
  store: ConfigStore;
  log: DecisionLog;
  decisions: DecisionService;
  control: ControlPlane;
  features: FeatureControl;
  auth: Authenticator;
  metrics: NodeMetrics;
  logger: Logger;
  bodyLimit: number;
  batchBodyLimit: number;
  lists: ListAdmin;
  importBodyLimit: number;
  maxJsonDepth: number;
  /** Lifecycle flags the node flips: not ready while warming or draining. */
  state: { ready: boolean; draining: boolean };
  /** Fault injection and component health, under `/v1/admin` (docs/RELIABILITY.md). */
  resilience: ResilienceRouteOptions;
  /** Quotas and overload shedding of the data-plane routes (docs/RELIABILITY.md). */
  admission: AdmissionControl;
}

const withFormats = (ajv: Ajv): Ajv => {
  (addFormats as unknown as (ajv: Ajv) => Ajv)(ajv);
  return ajv;
};

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

/** Status codes as label text, made once each rather than per request. */
const statusTexts = new Map<number, string>();
function statusText(status: number): string {
  let text = statusTexts.get(status);
  if (text === undefined) {
    text = String(status);
    statusTexts.set(status, text);
  }
  return text;
}

/** Builds the HTTP application from already-open dependencies; no listening, no signals. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLoggerFactory,
    bodyLimit: deps.bodyLimit,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && requestIdPattern.test(incoming) ? incoming : randomUUID();
    },
    routerOptions: { maxParamLength: 256 },
    frameworkErrors: (error, _request, reply) =>
      sendError(
        reply,
        new VigilError('invalid_request', { message: `The URL is not valid: ${error.message}` }),
      ),
  });
  // Bodies are JSON and must have the right types; query strings and path parameters are text, so
  // their numbers and booleans are converted before validation.
  const bodyAjv = withFormats(
    new Ajv({ allErrors: true, coerceTypes: false, useDefaults: true, strict: false }),
  );
  const textAjv = withFormats(
    new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false }),
  );
  app.setValidatorCompiler(({ schema, httpPart, url }) => {
    const compile = () => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema);
    return compilesEagerly(url) ? compile() : lazyValidator(compile);
  });
  app.setSerializerCompiler(({ schema, url }) => lazySerializer(schema as object, compilesEagerly(url)));

  app.decorateRequest('principal', null);
  app.decorateRequest('rawBody', undefined);
  registerErrorHandling(app);
  registerBodyParsing(app, { maxDepth: deps.maxJsonDepth });

  // Hooks on the hot path take callbacks rather than returning promises: one promise less per hook
  // and request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (!deps.state.draining) {
      done();
      return;
    }
    reply.header('connection', 'close');
    sendError(reply, new VigilError('draining'));
  });
  app.addHook('onResponse', (request, reply, done) => {
    deps.metrics.requestDuration.observe(
      request.method,
      request.routeOptions.url ?? 'unmatched',
      statusText(reply.statusCode),
      reply.elapsedTime / 1000,
    );
    done();
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Vigil',
        version: '0.1.0',
        description: 'Real-time risk decisions. See SPEC for the contract.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'API key `<key_id>.<secret>`, or the admin token',
          },
        },
      },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(health, {
    metrics: deps.metrics,
    ready: () => deps.state.ready && !deps.state.draining,
  });
  await app.register(dataPlane, {
    decisions: deps.decisions,
    log: deps.log,
    auth: deps.auth,
    batchBodyLimit: deps.batchBodyLimit,
    admission: deps.admission,
    admissionMetrics: deps.metrics,
  });
  /**
   * A tenant's configuration routes, the same under both prefixes: `/v1/admin/tenants/:tenant`
   * (the tenant from the URL) and `/v1/manage` (the tenant of the calling key).
   */
  const tenantRoutes = async (
    scope: FastifyInstance,
    prefix: string,
    tenantOfRequest: (request: FastifyRequest) => string,
    tag: string,
  ) => {
    const shared = { prefix, tenantOf: tenantOfRequest, tag };
    await scope.register(tenantConfig, {
      ...shared,
      control: deps.control,
      log: deps.log,
      store: deps.store,
    });
    await scope.register(policies, { ...shared, control: deps.control, batchBodyLimit: deps.batchBodyLimit });
    await scope.register(features, { ...shared, features: deps.features });
    await scope.register(lists, { ...shared, lists: deps.lists, importBodyLimit: deps.importBodyLimit });
  };
  await app.register(
    async (scope) => {
      authenticateAdmin(scope, deps.auth);
      await scope.register(admin, { control: deps.control, store: deps.store, registry: deps.registry });
      await scope.register(resilienceRoutes, deps.resilience);
      await tenantRoutes(
        scope,
        '/tenants/:tenant',
        (request) => (request.params as { tenant: string }).tenant,
        'admin',
      );
    },
    { prefix: '/v1/admin' },
  );
  await app.register(
    async (scope) => {
      authenticateKey(scope, deps.auth, 'manage');
      await tenantRoutes(scope, '', tenantOf, 'manage');
    },
    { prefix: '/v1/manage' },
  );
  return app;
}

export type { Principal };
