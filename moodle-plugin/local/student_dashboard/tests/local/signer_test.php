<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Tests of the outbound signature.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\local\signer
 */
final class signer_test extends \basic_testcase {

    /**
     * RFC 4231 test case 2.
     */
    public function test_rfc4231(): void {
        $signer = new signer('Jefe');
        $this->assertSame('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
            $signer->sign('what do ya want for nothing?'));
        $this->assertTrue($signer->verify('what do ya want for nothing?',
            'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'));
        $this->assertFalse($signer->verify('what do ya want for nothing? ', $signer->sign('what do ya want for nothing?')));
    }

    /**
     * The vectors shared with the Rust sync, when reachable.
     */
    public function test_shared_vectors(): void {
        $path = getenv('ZMSYNC_FIXTURES') ?: __DIR__ . '/../../../../../fixtures';
        $file = $path . '/signing-vectors.json';
        if (!is_readable($file)) {
            $this->markTestSkipped('fixtures/signing-vectors.json is not reachable; set ZMSYNC_FIXTURES');
        }
        foreach (json_decode(file_get_contents($file), true)['vectors'] as $vector) {
            $this->assertSame($vector['signature'], (new signer($vector['key']))->sign($vector['body']), $vector['description']);
        }
    }
}
