"""Admin: people (roles, specialties, passwords), projects (settings), model endpoints (add, test) and the
specialty list (add, rename, reorder, deactivate, restore the defaults)."""

import pandas as pd
import streamlit as st

from pages.common import flash, key_lookups, page_setup, reading, writing
from review import accounts, administration, catalog, endpoints
from review import specialties as taxonomy_admin

user = page_setup("admin")
st.title("Administration")

people_tab, projects_tab, endpoints_tab, specialties_tab = st.tabs(
    ["People", "Projects", "Endpoints", "Specialties"], key="admin_tabs"
)

with reading() as session:
    people = administration.user_rows(session)
    specialties = catalog.list_specialties(session)
    project_list = list(catalog.list_projects(session))
    endpoint_list = endpoints.list_endpoints(session)
    specialty_list = taxonomy_admin.specialty_rows(session)
    missing_defaults = taxonomy_admin.missing_default_specialties(session)

with people_tab:
    st.dataframe(
        pd.DataFrame([p.__dict__ for p in people]).drop(columns=["user_id"]),
        hide_index=True,
        key="admin_users_table",
    )
    st.subheader("Add a person")
    with st.form("admin_add_user_form", clear_on_submit=True):
        left, right = st.columns(2)
        username = left.text_input("Username", key="admin_new_username")
        display_name = right.text_input("Full name", key="admin_new_display_name")
        role = left.selectbox("Role", accounts.ROLES, key="admin_new_role")
        email = right.text_input("Email (for organisation sign-in)", key="admin_new_email")
        chosen = st.multiselect("Specialties", specialties, key="admin_new_specialties")
        password = st.text_input(
            "Initial password (leave empty for organisation sign-in only)",
            type="password",
            key="admin_new_password",
        )
        add = st.form_submit_button("Add person")
    if add:
        try:
            with writing() as session:
                created = accounts.create_user(
                    session,
                    username=username,
                    role=role,
                    password=password or None,
                    specialties=chosen,
                    display_name=display_name,
                    email=email or None,
                    actor_id=user.user_id,
                )
        except accounts.AccountError as exc:
            st.error(str(exc))
        else:
            flash(f"Added {created.username} as {created.role}.")
            st.rerun()

    st.subheader("Change a person")
    by_id = {p.user_id: p for p in people}
    target = st.selectbox(
        "Person",
        list(by_id),
        format_func=lambda i: f"{by_id[i].username} ({by_id[i].role})",
        key="admin_edit_user",
    )
    if target is not None:
        current = by_id[target]
        # Keys name the person: a keyed widget keeps its value when its default changes, so one set
        # of keys would carry the previous person's role and specialties into this person's form.
        with st.form("admin_edit_user_form"):
            new_role = st.selectbox(
                "Role", accounts.ROLES, index=accounts.ROLES.index(current.role), key=f"admin_edit_role_{target}"
            )
            current_specialties = [s for s in current.specialties.split(", ") if s]
            new_specialties = st.multiselect(
                "Specialties",
                sorted(set(specialties) | set(current_specialties)),
                default=current_specialties,
                key=f"admin_edit_specialties_{target}",
            )
            active = st.checkbox("Active (can sign in)", value=current.active, key=f"admin_edit_active_{target}")
            new_password = st.text_input(
                "New password (optional)", type="password", key=f"admin_edit_password_{target}"
            )
            save = st.form_submit_button("Save changes")
        if save:
            try:
                with writing() as session:
                    accounts.update_account(
                        session,
                        user_id=target,
                        actor_id=user.user_id,
                        role=new_role,
                        specialties=new_specialties,
                        active=active,
                        new_password=new_password or None,
                    )
            except accounts.AccountError as exc:
                st.error(str(exc))
            else:
                flash(f"Saved {current.username}.")
                st.rerun()

with projects_tab:
    if project_list:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "project": p.name,
                        "overlap": p.overlap,
                        "unsure allowed": p.allow_unsure,
                        "lease (min)": p.lease_minutes,
                        "gold policy": p.gold_policy,
                        "majority needs": p.gold_min_labels,
                        "specialty routing": p.specialty_routing,
                        "side by side columns": p.compare_columns,
                        "reference set": p.is_reference,
                        "near-duplicate threshold": p.duplicate_threshold,
                    }
                    for p in project_list
                ]
            ),
            hide_index=True,
            key="admin_projects_table",
        )
    options = {"new": "New project", **{p.id: p.name for p in project_list}}
    selected = st.selectbox("Project", list(options), format_func=options.get, key="admin_project")
    existing = next((p for p in project_list if p.id == selected), None)
    with st.form("admin_project_form"):  # keys name the project, as for people above
        name = st.text_input("Name", value=existing.name if existing else "", key=f"admin_project_name_{selected}")
        description = st.text_area(
            "Description", value=existing.description if existing else "", key=f"admin_project_description_{selected}"
        )
        guidelines = st.text_area(
            "Grading guidelines",
            value=existing.guidelines if existing else "",
            key=f"admin_project_guidelines_{selected}",
        )
        left, middle, right = st.columns(3)
        overlap = left.number_input(
            "Physicians per answer (overlap)",
            1,
            20,
            existing.overlap if existing else 2,
            key=f"admin_project_overlap_{selected}",
        )
        lease = middle.number_input(
            "Lease (minutes)",
            1,
            1440,
            existing.lease_minutes if existing else 30,
            key=f"admin_project_lease_{selected}",
        )
        policy = right.selectbox(
            "Gold policy",
            administration.GOLD_POLICIES,
            index=administration.GOLD_POLICIES.index(existing.gold_policy) if existing else 0,
            key=f"admin_project_policy_{selected}",
        )
        unsure = left.checkbox(
            "Allow 'unsure'", value=existing.allow_unsure if existing else False, key=f"admin_project_unsure_{selected}"
        )
        routing = middle.checkbox(
            "Route by specialty",
            value=existing.specialty_routing if existing else True,
            key=f"admin_project_routing_{selected}",
        )
        columns = right.number_input(
            "Answers side by side",
            2,
            4,
            existing.compare_columns if existing else 2,
            key=f"admin_project_columns_{selected}",
        )
        min_labels = right.number_input(
            "Majority gold needs at least (labels)",
            1,
            20,
            existing.gold_min_labels if existing else 2,
            key=f"admin_project_min_labels_{selected}",
        )
        reference = left.checkbox(
            "Reference set (public benchmark)",
            value=existing.is_reference if existing else False,
            key=f"admin_project_reference_{selected}",
            help="Items of other projects are checked against this project's items for copies.",
        )
        threshold = middle.number_input(
            "Near-duplicate threshold",
            min_value=0.01,
            max_value=1.0,
            value=float(existing.duplicate_threshold) if existing else 0.7,
            step=0.05,
            format="%.2f",
            key=f"admin_project_threshold_{selected}",
            help="How similar two items' texts must be (0 to 1, 1 = identical) to be flagged as near-duplicates.",
        )
        saved = st.form_submit_button("Save project")
    if saved:
        settings = {
            "name": name,
            "description": description,
            "guidelines": guidelines,
            "overlap": int(overlap),
            "lease_minutes": int(lease),
            "gold_policy": policy,
            "allow_unsure": unsure,
            "specialty_routing": routing,
            "compare_columns": int(columns),
            "gold_min_labels": int(min_labels),
            "is_reference": reference,
            "duplicate_threshold": float(threshold),
        }
        try:
            with writing() as session:
                if existing is None:
                    administration.create_project(session, actor_id=user.user_id, **settings)
                else:
                    administration.update_project_settings(
                        session, project_id=existing.id, actor_id=user.user_id, **settings
                    )
        except accounts.AccountError as exc:
            st.error(str(exc))
        else:
            flash(f"Saved project {name.strip()}.")
            st.rerun()

with endpoints_tab:
    if endpoint_list:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "name": e.name,
                        "base URL": e.base_url,
                        "model": e.model,
                        "key variable": e.api_key_env or "(no key)",
                        "parameters": ", ".join(f"{k} {v}" for k, v in e.params.items()),
                    }
                    for e in endpoint_list
                ]
            ),
            hide_index=True,
            key="admin_ep_table",
        )
    else:
        st.info("There are no model endpoints yet. Add one below to generate answers and run the judge.")

    st.subheader("Add an endpoint")
    with st.form("admin_ep_form"):
        left, right = st.columns(2)
        ep_name = left.text_input("Name", key="admin_ep_name", placeholder="local-vllm")
        ep_model = right.text_input("Model", key="admin_ep_model", help="The model's name as the server knows it.")
        ep_url = st.text_input(
            "Base URL",
            key="admin_ep_url",
            placeholder="http://127.0.0.1:8000/v1",
            help="The OpenAI-compatible base URL, up to /v1; requests go to <base URL>/chat/completions.",
        )
        ep_key_env = st.text_input(
            "API key variable (optional)",
            key="admin_ep_key_env",
            placeholder="MEDREVIEW_LLM_KEY",
            help=(
                "The name of an environment variable or Streamlit secret holding the key, not the key. "
                "Leave it empty for a server that needs no key."
            ),
        )
        ep_temperature = left.number_input(
            "Temperature (optional)", min_value=0.0, max_value=2.0, value=None, step=0.1, key="admin_ep_temperature"
        )
        ep_max_tokens = right.number_input(
            "Max tokens (optional)", min_value=1, max_value=1_000_000, value=None, step=1, key="admin_ep_max_tokens"
        )
        ep_submitted = st.form_submit_button("Add endpoint")
    if ep_submitted:
        ep_params = {"temperature": ep_temperature, "max_tokens": ep_max_tokens}
        try:
            with writing() as session:
                added = endpoints.add_endpoint(
                    session,
                    name=ep_name,
                    base_url=ep_url,
                    model=ep_model,
                    api_key_env=ep_key_env,
                    params={k: v for k, v in ep_params.items() if v is not None},
                    actor_id=user.user_id,
                )
        except endpoints.EndpointError as exc:
            st.error(str(exc))
        else:
            for key in ("admin_ep_name", "admin_ep_url", "admin_ep_model", "admin_ep_key_env"):
                st.session_state.pop(key, None)
            flash(f"Added the endpoint {added.name}.")
            st.rerun()

    if endpoint_list:
        st.subheader("Test the connection")
        by_endpoint = {e.endpoint_id: e for e in endpoint_list}
        tested = st.selectbox(
            "Endpoint",
            list(by_endpoint),
            format_func=lambda i: f"{by_endpoint[i].name} ({by_endpoint[i].model})",
            key="admin_ep_test_choice",
        )
        if st.button("Test the connection", key="admin_ep_test") and tested is not None:
            with st.spinner("Sending one short request…"):
                check = endpoints.check_connection(endpoints.spec_of(by_endpoint[tested]), lookups=key_lookups())
            if check.ok:
                st.success(check.message)
            else:
                st.error(check.message)

with specialties_tab:
    st.caption(
        "The specialties offered when people and items are given specialties. An inactive specialty is no longer "
        "offered, but the people and items that have it keep it."
    )
    if specialty_list:
        st.dataframe(
            pd.DataFrame([{"place": s.place, "specialty": s.name, "active": s.active} for s in specialty_list]),
            hide_index=True,
            key="admin_specialties_table",
        )
    else:
        st.info("The specialty list is empty. Add specialties below or restore the defaults.")

    st.subheader("Add a specialty")
    with st.form("admin_specialty_add_form"):
        new_specialty = st.text_input("Name", key="admin_specialty_new_name", max_chars=200)
        add_specialty = st.form_submit_button("Add specialty")
    if add_specialty:
        try:
            with writing() as session:
                taxonomy_admin.add_specialty(session, name=new_specialty, actor_id=user.user_id)
        except taxonomy_admin.SpecialtyError as exc:
            st.error(str(exc))
        else:
            st.session_state.pop("admin_specialty_new_name", None)
            flash(f"Added the specialty {' '.join(new_specialty.split())}.")
            st.rerun()

    if specialty_list:
        st.subheader("Change a specialty")
        by_specialty = {s.specialty_id: s for s in specialty_list}
        chosen_id = st.selectbox(
            "Specialty",
            list(by_specialty),
            format_func=lambda i: by_specialty[i].name + ("" if by_specialty[i].active else " (inactive)"),
            key="admin_specialty_choice",
        )
        if chosen_id is not None:
            chosen = by_specialty[chosen_id]
            with st.form("admin_specialty_rename_form"):  # the key names the specialty, as for people above
                renamed = st.text_input(
                    "New name",
                    value=chosen.name,
                    max_chars=200,
                    key=f"admin_specialty_rename_{chosen_id}",
                    help="The new name is written on every person and item that has this specialty.",
                )
                rename = st.form_submit_button("Rename")
            up, down, toggle = st.columns(3)
            move_up = up.button("Move up", key="admin_specialty_up", disabled=chosen.place == 1)
            move_down = down.button(
                "Move down", key="admin_specialty_down", disabled=chosen.place == len(specialty_list)
            )
            switch = toggle.button("Deactivate" if chosen.active else "Reactivate", key="admin_specialty_active")
            try:
                done: str | None = None
                if rename:
                    with writing() as session:
                        report = taxonomy_admin.rename_specialty(
                            session, specialty_id=chosen_id, new_name=renamed, actor_id=user.user_id
                        )
                    done = (
                        f"Renamed {report.before} to {report.after} "
                        f"(on {report.users} people and {report.item_versions} item versions)."
                    )
                elif move_up or move_down:
                    with writing() as session:
                        taxonomy_admin.move_specialty(
                            session, specialty_id=chosen_id, step=-1 if move_up else 1, actor_id=user.user_id
                        )
                    done = f"Moved {chosen.name} {'up' if move_up else 'down'}."
                elif switch:
                    with writing() as session:
                        taxonomy_admin.set_specialty_active(
                            session, specialty_id=chosen_id, active=not chosen.active, actor_id=user.user_id
                        )
                    done = f"{'Reactivated' if not chosen.active else 'Deactivated'} {chosen.name}."
            except taxonomy_admin.SpecialtyError as exc:
                st.error(str(exc))
            else:
                if done is not None:
                    flash(done)
                    st.rerun()

    st.subheader("Default specialties")
    if missing_defaults:
        st.caption("Missing from the list:")
        st.text(", ".join(missing_defaults))
        if st.button("Restore missing defaults", key="admin_specialty_restore"):
            try:
                with writing() as session:
                    restored = taxonomy_admin.restore_default_specialties(session, actor_id=user.user_id)
            except taxonomy_admin.SpecialtyError as exc:
                st.error(str(exc))
            else:
                flash(
                    f"Restored the missing defaults: {', '.join(restored)}." if restored else "No default was missing."
                )
                st.rerun()
    else:
        st.caption("Every default specialty is in the list.")
