// The operator's view (admin key): create accounts, whose API key is shown once with a copy
// button, and change an account's plan.

import * as api from './api.js';
import { h, replace, badge, errorArea, field, busy, announce, table, cell, formatDate, icon, copyButton, checkbox } from './dom.js';

const PLANS = ['free', 'plus', 'pro', 'elite'];

function planSelect(name, selected) {
  return h('select', { name }, PLANS.map((plan) => h('option', { value: plan, selected: plan === selected }, plan)));
}

export function operatorPage(root) {
  let stopped = false;

  const accountName = h('input', { type: 'text', name: 'name', id: 'account-name', placeholder: 'Shop Builder Inc', autocomplete: 'off' });
  const plan = planSelect('plan', 'pro');
  plan.id = 'account-plan';
  const ownership = checkbox('Require domain ownership verification (TXT record)', { name: 'require_ownership_verification' });
  const error = errorArea();
  const submit = h('button', { type: 'submit', class: 'primary', dataset: { action: 'create-account' } }, icon('plus'), 'Create account');
  const created = h('div');
  const form = h('form', { class: 'inline', novalidate: true, 'aria-label': 'Create an account' },
    field('Account name', accountName), field('Plan', plan), submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    try {
      const account = await busy(submit, 'Creating…', () => api.post('/v1/accounts', {
        name: accountName.value.trim(), plan: plan.value, require_ownership_verification: ownership.input.checked,
      }));
      accountName.value = '';
      showKeyOnce(account);
      await refresh();
    } catch (failure) {
      error.show(failure);
      accountName.focus();
    }
  });

  // The key is in the page only until "Done" (or leaving the page): it cannot be shown again.
  function showKeyOnce(account) {
    const key = h('input', { type: 'text', readonly: true, id: 'new-api-key', value: account.api_key, 'aria-describedby': 'new-api-key-note', dataset: { field: 'api-key' } });
    const done = h('button', { type: 'button', dataset: { action: 'done' } }, 'Done');
    const box = h('section', { class: 'secret-box', role: 'status', 'aria-labelledby': 'new-account-title', dataset: { field: 'new-account', id: account.id } },
      h('h2', { id: 'new-account-title' }, 'Account created: ', h('span', { text: account.name })),
      h('p', { id: 'new-api-key-note', text: 'This is its API key. It is shown only this once (only its hash is stored): copy it now and hand it to the customer.' }),
      h('label', { for: 'new-api-key', text: 'API key' }),
      h('div', { class: 'row' }, key, copyButton(() => key.value, 'Copy')),
      h('p', { class: 'small' }, 'Account id ', h('code', { text: account.id })),
      done);
    done.addEventListener('click', () => {
      created.replaceChildren();
      accountName.focus();
    });
    replace(created, box);
    key.focus();
    key.select();
    announce(`Account ${account.name} created; its API key is shown once`);
  }

  const notice = errorArea();
  const list = table('Accounts', ['Name', 'Account id', 'Plan', 'Ownership TXT', 'Created']);
  list.body.append(h('tr', {}, h('td', { class: 'empty', colspan: 5, text: 'Loading accounts…' })));

  replace(root,
    h('div', { class: 'page-head' },
      h('div', {},
        h('h1', { text: 'Accounts' }),
        h('p', { class: 'muted', text: 'Operator view: every customer account of this deployment, its plan, and new accounts.' }))),
    h('section', { class: 'card', 'aria-labelledby': 'create-account-title' },
      h('h2', { id: 'create-account-title', text: 'Create an account' }),
      form,
      ownership.element,
      error.element),
    created,
    notice.element,
    list.element);

  function row(account) {
    const select = planSelect('plan', account.plan);
    select.setAttribute('aria-label', `Plan of ${account.name}`);
    select.dataset.field = 'plan';
    const save = h('button', { type: 'button', class: 'small', dataset: { action: 'change-plan' }, disabled: true, 'aria-label': `Change the plan of ${account.name}` }, 'Change plan');
    const status = h('span', { class: 'small muted', role: 'status' });
    select.addEventListener('change', () => {
      save.disabled = select.value === account.plan;
    });
    save.addEventListener('click', async () => {
      notice.clear();
      try {
        const updated = await busy(save, 'Saving…', () => api.patch(`/v1/accounts/${encodeURIComponent(account.id)}`, { plan: select.value }));
        account.plan = updated.plan;
        save.disabled = true;
        status.textContent = `Now on ${updated.plan}`;
        announce(`${account.name} is now on the ${updated.plan} plan`);
      } catch (failure) {
        notice.show(failure);
      }
    });
    return h('tr', { dataset: { id: account.id } },
      cell('Name', h('span', { dataset: { field: 'name' } }, account.name)),
      cell('Account id', h('code', { text: account.id })),
      cell('Plan', h('div', { class: 'actions' }, select, save, status)),
      cell('Ownership TXT', account.require_ownership_verification
        ? badge('blue', 'required') : badge('gray', 'not required')),
      cell('Created', h('span', { text: formatDate(account.created_at) })));
  }

  async function refresh() {
    try {
      const accounts = await api.listAll('/v1/accounts', 'accounts');
      if (stopped) return;
      notice.clear();
      replace(list.body, accounts.length
        ? accounts.map(row)
        : h('tr', {}, h('td', { class: 'empty', colspan: 5, text: 'No accounts yet.' })));
    } catch (failure) {
      if (!stopped) notice.show(failure);
    }
  }

  refresh();
  return () => {
    stopped = true;
  };
}
