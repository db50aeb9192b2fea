// The dashboard's entry: sign-in, the session bar, and the pages by URL fragment
// (#/domains, #/certificates, #/zones for an account; #/accounts for the operator).

import * as api from './api.js';
import { h, replace, errorArea, field, busy, announce, badge } from './dom.js';
import { domainsPage } from './domains.js';
import { certificatesPage } from './certificates.js';
import { zonesPage } from './zones.js';
import { operatorPage } from './operator.js';

const PAGES = {
  account: [
    { route: 'domains', title: 'Domains', render: domainsPage },
    { route: 'certificates', title: 'SSL Certificates', render: certificatesPage },
    { route: 'zones', title: 'Zones', render: zonesPage },
  ],
  admin: [{ route: 'accounts', title: 'Accounts', render: operatorPage }],
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const sessionBar = document.getElementById('session');

/** What pages share: the account's limits (plan), refreshed by whoever reads them. */
const context = {
  limits: null,
  async refreshLimits() {
    context.limits = await api.get('/v1/limits');
    renderSessionBar();
    return context.limits;
  },
};

let leavePage = null;

function routeOf(hash) {
  const match = /^#\/([a-z-]+)/.exec(hash);
  return match ? match[1] : null;
}

function render({ focus = false } = {}) {
  if (leavePage) {
    leavePage();
    leavePage = null;
  }
  document.querySelectorAll('dialog').forEach((dialog) => dialog.close());
  const session = api.session();
  if (!session) {
    renderSignIn();
    return;
  }
  const pages = PAGES[session.role];
  let page = pages.find((candidate) => candidate.route === routeOf(location.hash));
  if (!page) {
    page = pages[0];
    history.replaceState(null, '', `#/${page.route}`);
  }
  replace(nav, pages.map((candidate) => h('a', {
    href: `#/${candidate.route}`,
    'aria-current': candidate === page ? 'page' : false,
    dataset: { nav: candidate.route },
  }, candidate.title)));
  renderSessionBar();
  document.title = `${page.title} · EdgeCert`;
  main.replaceChildren();
  main.dataset.page = page.route;
  leavePage = page.render(main, context) || null;
  if (focus) main.focus();
}

function renderSessionBar() {
  const session = api.session();
  if (!session) {
    sessionBar.replaceChildren();
    return;
  }
  const who = session.role === 'admin'
    ? badge('blue', 'Operator')
    : h('span', { class: 'plan', dataset: { plan: context.limits ? context.limits.plan : '' } },
      context.limits ? `Plan: ${context.limits.plan}` : 'Account');
  const signOutButton = h('button', { type: 'button', class: 'small', dataset: { action: 'sign-out' } }, 'Sign out');
  signOutButton.addEventListener('click', () => signOut('Signed out.'));
  replace(sessionBar, who, signOutButton);
  if (session.role === 'account' && !context.limits) {
    context.refreshLimits().catch(() => {});
  }
}

function signOut(message) {
  api.signOut();
  context.limits = null;
  history.replaceState(null, '', location.pathname);
  render();
  announce(message);
}

/** Which kind of key this is: an account's (GET /v1/limits answers) or the operator's. */
async function identify(key) {
  let refusal;
  try {
    context.limits = await api.call('GET', '/v1/limits', undefined, key);
    return 'account';
  } catch (failure) {
    if (failure.status !== 401 && failure.status !== 403) throw failure;
    refusal = failure;
  }
  try {
    await api.call('GET', '/v1/accounts?limit=1', undefined, key);
    return 'admin';
  } catch (failure) {
    throw failure.status === 401 || failure.status === 403 ? refusal : failure;
  }
}

function renderSignIn(notice) {
  nav.replaceChildren();
  sessionBar.replaceChildren();
  document.title = 'Sign in · EdgeCert';
  main.dataset.page = 'sign-in';
  const input = h('input', {
    type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', spellcheck: 'false', required: true,
  });
  const error = errorArea();
  const submit = h('button', { type: 'submit', class: 'primary', dataset: { action: 'sign-in' } }, 'Sign in');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title', novalidate: true },
    h('h1', { id: 'signin-title', text: 'Sign in to EdgeCert' }),
    h('p', { class: 'muted', text: 'Use your account’s API key, or the operator’s admin key to manage accounts. The key is kept in this browser tab only, until you sign out or close the tab.' }),
    field('API key', input),
    error.element,
    submit);
  if (notice) error.show(notice);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const key = input.value.trim();
    if (!key) {
      error.show('Enter an API key.');
      input.focus();
      return;
    }
    try {
      const role = await busy(submit, 'Signing in…', () => identify(key));
      input.value = '';
      api.signIn(key, role);
      announce(role === 'admin' ? 'Signed in as the operator' : 'Signed in');
      render({ focus: true });
    } catch (failure) {
      error.show(failure);
      input.focus();
    }
  });
  replace(main, form);
  input.focus();
}

api.whenUnauthorized((failure) => {
  api.signOut();
  context.limits = null;
  render();
  // The sign-in form shows why: the API's own message.
  const error = main.querySelector('[data-role="error"]');
  if (error) error.textContent = failure.message;
});

window.addEventListener('hashchange', () => {
  if (routeOf(location.hash)) render({ focus: true });
});

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

render();
