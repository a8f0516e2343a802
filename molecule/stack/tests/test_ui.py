"""A person's view: log in to the dashboard in headless Chromium, through Nginx, and see the figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import PROJECT, SERVER_NAME
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

PORTS = {"stack-debian12": 9443, "stack-debian13": 9444}
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", PROJECT / "artifacts"))


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--ignore-certificate-errors",
        f"--host-resolver-rules=MAP {SERVER_NAME} 127.0.0.1",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_dashboard_login_shows_the_business_figures(host, browser, secrets, received_order):
    name = host.backend.get_hostname()
    base = f"https://{SERVER_NAME}:{PORTS[name]}"
    browser.get(base + "/login")
    browser.find_element(By.ID, "token").send_keys(secrets["vault_app_admin_token"])
    browser.find_element(By.CSS_SELECTOR, "form.login").submit()
    WebDriverWait(browser, 20).until(expected_conditions.url_contains("/dashboard/figures"))
    text = browser.find_element(By.TAG_NAME, "body").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))
    assert "token is not valid" not in text
    for figure in ("Orders by status", "Supplier on-time delivery", "Inventory turnover"):
        assert figure.lower() in text.lower(), text[:1500]
    # This module's own purchase (received_order) was received.
    assert "received" in text, text[:1500]
    # The page's stylesheet came through Nginx from the fingerprinted static folder.
    sheet = browser.find_element(By.CSS_SELECTOR, "link[rel=stylesheet]").get_attribute("href")
    assert "/static/" in sheet
