"""The page for people (/ui) in a real browser (headless Chromium through Selenium) against a real `bentoml serve`:
a real cup photo, a photo of something else, a text file, a correction that lands in the database under an API key
(with the answer's feedback token; another photo's or an expired token is refused), keyboard access and an
automated accessibility check (axe-core, vendored); and the review page (/ui/review/): the key typed once, one key
a label, written as a reviewer's. Screenshots go to test-artifacts/page/."""

import hashlib
import shutil
import time
from pathlib import Path

import httpx
import pytest
from sample_data import NOT_KITCHENWARE, REAL_PHOTOS, needs_shipped_model_and_photos
from server import serving

from kitchenware.feedback.repository import FeedbackStore
from kitchenware.serving.tokens import FeedbackTokens

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "page"
AXE = Path(__file__).resolve().parents[1] / "helpers" / "vendor" / "axe.min.js"
CUP = REAL_PHOTOS / "images" / "0009.jpg"
API_KEY, SECRET = "a-key-the-page-never-sees", "the-feedback-token-secret"

pytestmark = [
    needs_shipped_model_and_photos,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="Chromium and its driver are not installed: run scripts/install_test_services.sh (as root)",
    ),
]


@pytest.fixture(scope="module")
def page_server(shipped_model_in_store: str, tmp_path_factory):
    """The shipped model served with feedback storage on (SQLite) under an API key, as deploy/kubernetes.yaml runs
    it; yields (base URL, database URL)."""
    folder = tmp_path_factory.mktemp("page")
    database = f"sqlite:///{folder / 'feedback.db'}"
    environment = {
        "KITCHENWARE_MODEL": shipped_model_in_store,
        "KITCHENWARE_FEEDBACK_DB": database,
        "KITCHENWARE_MAX_UPLOAD_MB": "1",
        "KITCHENWARE_API_KEY": API_KEY,
        "KITCHENWARE_FEEDBACK_SECRET": SECRET,
    }
    with serving("service:KitchenwareClassifier", folder / "serve.log", **environment) as (url, _):
        yield url, database


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_for(browser, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda _: condition())


def upload(browser, url: str, photo: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/ui/")
    browser.find_element(By.ID, "photo").send_keys(str(photo))


def text(browser, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id).text


def test_a_cup_photo_shows_cup_three_bars_and_the_heat_map_and_a_correction_is_saved(page_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, database = page_server
    upload(browser, url, CUP)
    wait_for(browser, lambda: text(browser, "verdict"))
    assert text(browser, "verdict") == "Looks like a cup"
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars li")
    assert len(bars) == 3 and bars[0].text.split()[0] == "cup"
    assert int(bars[0].text.split()[-1].rstrip("%")) >= 80
    heatmap = browser.find_element(By.ID, "heatmap")
    wait_for(browser, lambda: browser.execute_script("return arguments[0].naturalWidth", heatmap) > 0)
    assert 'looked for "cup"' in text(browser, "heatmap-caption")
    browser.save_screenshot(str(ARTIFACTS / "cup.png"))

    buttons = {button.text: button for button in browser.find_elements(By.CSS_SELECTOR, "#choices button")}
    assert {"Yes, it's a cup", "It's a glass", "None of these"} <= set(buttons)
    buttons["It's a glass"].click()
    wait_for(browser, lambda: text(browser, "feedback-status").startswith("Thanks, saved"))
    browser.save_screenshot(str(ARTIFACTS / "cup-corrected.png"))
    answered = FeedbackStore(database, tmp_path).answered()  # under the API key, with the answer's token
    assert [(row.predicted, row.chosen) for row in answered] == [("cup", "glass")]


def test_a_token_for_another_photo_or_an_expired_one_is_refused_and_the_page_says_so(page_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, database = page_server
    cup = httpx.post(f"{url}/classify", files={"image": CUP.read_bytes()}, timeout=60).json()
    car = httpx.post(f"{url}/classify", files={"image": (NOT_KITCHENWARE / "far-car-006.jpg").read_bytes()}, timeout=60)
    assert cup["photo_id"] == hashlib.sha256(CUP.read_bytes()).hexdigest()
    expired = FeedbackTokens(SECRET.encode(), 3600, clock=lambda: time.time() - 3601).issue(cup["photo_id"])
    store = FeedbackStore(database, tmp_path)
    before = store.counts()["choices"]
    for token, message in ((car.json()["feedback_token"], "for another photo"), (expired, "has expired")):
        refused = httpx.post(f"{url}/feedback", json={**choice(cup, "plate"), "token": token}, timeout=60)
        assert refused.status_code == 403 and message in refused.json()["error"], refused.text
        assert "classify the photo again" in refused.json()["error"]
    assert httpx.post(f"{url}/feedback", json=choice(cup, "plate"), timeout=60).status_code == 401  # neither
    assert store.counts()["choices"] == before

    # The page holding an expired token (its /classify answer's token swapped in the browser) says so in words.
    browser.get(f"{url}/ui/")
    browser.execute_script(
        """const [stale] = arguments, original = window.fetch;
        window.fetch = async (...request) => {
          const response = await original(...request);
          if (!String(request[0]).endsWith("/classify")) return response;
          const answer = {...await response.json(), feedback_token: stale};
          return new Response(JSON.stringify(answer), {status: response.status, headers: response.headers});
        };""",
        expired,
    )
    browser.find_element(By.ID, "photo").send_keys(str(CUP))
    wait_for(browser, lambda: text(browser, "verdict") == "Looks like a cup")
    buttons = {button.text: button for button in browser.find_elements(By.CSS_SELECTOR, "#choices button")}
    buttons["It's a glass"].click()
    wait_for(browser, lambda: text(browser, "feedback-status").startswith("Not saved"))
    assert text(browser, "feedback-status") == "Not saved: this answer is too old. Choose the photo again."
    assert store.counts()["choices"] == before

    bulk = {"Authorization": f"Bearer {API_KEY}"}  # the API key, for bulk and admin use, needs no token
    assert httpx.post(f"{url}/feedback", json=choice(cup, "plate"), headers=bulk, timeout=60).status_code == 200
    assert store.counts()["choices"] == before + 1
    assert {row.photo_id: row.chosen for row in store.answered()}[cup["photo_id"]] == "plate"


def choice(answer: dict, label: str) -> dict:
    return {"photo_id": answer["photo_id"], "label": label}


def test_a_photo_of_something_else_is_not_kitchenware(page_server, browser):
    url, _ = page_server
    other = NOT_KITCHENWARE / "far-car-006.jpg"
    upload(browser, url, other)
    wait_for(browser, lambda: text(browser, "verdict"))
    assert text(browser, "verdict") == "This doesn't look like kitchenware"
    browser.save_screenshot(str(ARTIFACTS / "not-kitchenware.png"))


def test_a_text_file_and_a_photo_over_the_limit_get_the_error_in_words(page_server, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    url, _ = page_server
    notes = tmp_path / "notes.txt"
    notes.write_text("this is a shopping list, not a photo")
    upload(browser, url, notes)
    wait_for(browser, lambda: "could not be classified" in text(browser, "status"))
    assert "not a readable image" in text(browser, "status")
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    assert not browser.find_element(By.ID, "answer").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "error.png"))
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(CUP.read_bytes() * (2_000_000 // CUP.stat().st_size + 1))  # over the server's 1 MB
    upload(browser, url, huge)
    wait_for(browser, lambda: "could not be classified" in text(browser, "status"))
    assert "larger than the limit of 1 MB" in text(browser, "status")


def test_the_page_is_keyboard_usable_and_passes_the_accessibility_check(page_server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    url, _ = page_server
    upload(browser, url, CUP)
    wait_for(browser, lambda: text(browser, "verdict") == "Looks like a cup")
    browser.execute_script("document.activeElement.blur()")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "photo"  # the first stop is the photo picker
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.tag_name == "button"  # then the answer's buttons
    assert accessibility_violations(browser) == []


def accessibility_violations(browser) -> list:
    """What axe-core finds wrong on the page shown: (rule, impact, where) each."""
    browser.execute_script(AXE.read_text())
    results = browser.execute_async_script("const done = arguments[0]; axe.run().then(done);")
    assert len(results["passes"]) > 10  # the check really ran
    return [(v["id"], v["impact"], [node["target"] for node in v["nodes"]]) for v in results["violations"]]


def test_the_review_page_labels_the_queue_with_one_key_a_photo(page_server, browser, tmp_path: Path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, database = page_server
    for name in ("far-cat-004.jpg", "far-lamp-021.jpg", "far-hat-017.jpg"):
        photo = (NOT_KITCHENWARE / name).read_bytes()
        assert httpx.post(f"{url}/classify", files={"image": photo}, timeout=60).json()["photo_id"]
    key = {"Authorization": f"Bearer {API_KEY}"}
    queue = httpx.get(f"{url}/review/queue?limit=100", headers=key, timeout=60).json()
    first, _, third = (photo["photo_id"] for photo in queue["photos"][:3])

    browser.get(f"{url}/ui/review")  # redirected to /ui/review/
    browser.find_element(By.ID, "key").send_keys(API_KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda: text(browser, "position") == f"Photo 1 of {len(queue['photos'])}")
    keys = [button.text for button in browser.find_elements(By.CSS_SELECTOR, "#keys button")]
    assert keys == [f"{number} {name}" for number, name in enumerate(queue["class_names"], start=1)] + [
        "0 none of these"
    ]
    photo = browser.find_element(By.ID, "photo")
    wait_for(browser, lambda: browser.execute_script("return arguments[0].naturalWidth", photo) > 0)
    assert not browser.find_element(By.ID, "key-form").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "review.png"))
    assert accessibility_violations(browser) == []

    ActionChains(browser).send_keys("2").perform()  # the second class, for the first photo; on to the second
    wait_for(browser, lambda: text(browser, "position").startswith("Photo 2 of"))
    ActionChains(browser).send_keys("\ue014").perform()  # the right arrow: on to the third
    wait_for(browser, lambda: text(browser, "position").startswith("Photo 3 of"))
    ActionChains(browser).send_keys("0").perform()  # none of these
    wait_for(browser, lambda: text(browser, "status") == "Saved photo 3: none of these.")
    reviewed = {row.photo_id: (row.chosen, row.source) for row in FeedbackStore(database, tmp_path).answered()}
    assert {photo_id: reviewed.get(photo_id) for photo_id in (first, third)} == {
        first: (queue["class_names"][1], "reviewer"),
        third: ("other", "reviewer"),
    }
    assert queue["photos"][1]["photo_id"] not in reviewed
    assert "kitchenware-api-key" in browser.execute_script("return Object.keys(sessionStorage)")


def test_without_feedback_storage_the_page_offers_no_buttons(shipped_model_in_store: str, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    log = tmp_path / "serve.log"
    with serving("service:KitchenwareClassifier", log, KITCHENWARE_MODEL=shipped_model_in_store) as (url, _):
        upload(browser, url, CUP)
        wait_for(browser, lambda: text(browser, "verdict") == "Looks like a cup")
        assert not browser.find_element(By.ID, "feedback").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "#choices button") == []
        refused = httpx.get(f"{url}/review/queue", headers={"Authorization": "Bearer anything"}, timeout=60)
        assert refused.status_code == 403  # the review queue is never open: without an API key it is off
        assert refused.json()["error"].startswith("the review queue needs an API key: start the service with")
